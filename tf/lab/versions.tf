terraform {
  # terraform_data (built in, no provider download) needs 1.4; optional() defaults need 1.3.
  required_version = ">= 1.4"
}
