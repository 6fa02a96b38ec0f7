# The generated root module configures the provider (credentials come
# from the environment) and passes it in; this module only states what it needs.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    vultr = {
      source  = "vultr/vultr"
      version = "~> 2.0"
    }
  }
}
