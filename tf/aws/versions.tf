# The generated root module configures the provider (region, credentials,
# endpoints) and passes it in; this module only states what it needs.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}
