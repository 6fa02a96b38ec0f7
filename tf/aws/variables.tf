# The same variables, with the same names and types, exist in tf/aws, tf/linode
# and tf/vultr: cloudcast's compiler writes exactly these.

variable "site" {
  description = "Site name from the spec; used in resource names and tags."
  type        = string
}

variable "name_prefix" {
  description = "Network name from the spec; prefix for every resource name."
  type        = string
}

variable "region" {
  description = "Provider region. Unused inside this module (the aws provider passed in carries the region); declared so all provider modules share one interface."
  type        = string
}

variable "cidr" {
  description = "The site CIDR: the VPC range, and the range of its single subnet."
  type        = string

  validation {
    condition     = can(cidrnetmask(var.cidr))
    error_message = "cidr must be an IPv4 CIDR such as 10.20.0.0/16."
  }
}

variable "overlay_cidr" {
  description = "The overlay (WireGuard/IPsec) network CIDR; all traffic from it is allowed in."
  type        = string
}

variable "remote_cidrs" {
  description = "Other sites' CIDRs; all traffic from them is allowed in."
  type        = list(string)
  default     = []
}

variable "udp_ports" {
  description = "Transport UDP ports opened to the internet on gateway, hub and public nodes (the WireGuard port, or 500 and 4500 for IPsec)."
  type        = list(number)

  validation {
    condition     = alltrue([for p in var.udp_ports : p >= 1 && p <= 65535 && floor(p) == p])
    error_message = "udp_ports must be whole numbers between 1 and 65535."
  }
}

variable "ssh_port" {
  description = "TCP port sshd listens on."
  type        = number
  default     = 22
}

variable "ssh_user" {
  description = "User cloudcast logs in as (reported in the nodes output). \"root\" makes cloud-init install the key for root; otherwise use the image's default user (\"ubuntu\" on Ubuntu AMIs)."
  type        = string
  default     = "root"
}

variable "ssh_sources" {
  description = "CIDRs allowed to reach SSH on gateway, hub and public nodes."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "ssh_public_key" {
  description = "OpenSSH public key text installed as the instances' key pair."
  type        = string
}

variable "tags" {
  description = "Extra tags put on every resource that takes tags."
  type        = map(string)
  default     = {}
}

variable "nodes" {
  description = <<-EOT
    Nodes of this site, by name. size: instance type. image: an AMI id ("ami-..."),
    an AMI name pattern, or "" for the newest Canonical Ubuntu 22.04 amd64 image.
    role: gateway, member or hub. private_ip: the address cloudcast planned inside
    cidr. public: whether the node gets an Elastic IP.
  EOT
  type = map(object({
    size       = string
    image      = string
    role       = string
    private_ip = string
    public     = bool
  }))

  validation {
    condition     = alltrue([for n in values(var.nodes) : contains(["gateway", "member", "hub"], n.role)])
    error_message = "Each node's role must be \"gateway\", \"member\" or \"hub\"."
  }

  validation {
    condition     = alltrue([for n in values(var.nodes) : can(cidrhost("${n.private_ip}/32", 0))])
    error_message = "Each node's private_ip must be an IPv4 address."
  }
}
