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
  description = "Vultr region id (e.g. \"sgp\") for the VPC and the instances."
  type        = string
}

variable "cidr" {
  description = "The site CIDR: the VPC's v4 subnet and mask."
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
  description = "Transport UDP ports opened to the internet (the WireGuard port, or 500 and 4500 for IPsec)."
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
  description = "User cloudcast logs in as (reported in the nodes output; Vultr installs the key for root)."
  type        = string
  default     = "root"
}

variable "ssh_sources" {
  description = "CIDRs allowed to reach SSH."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "ssh_public_key" {
  description = "OpenSSH public key text registered as a Vultr SSH key and installed on every instance."
  type        = string
}

variable "tags" {
  description = "Extra tags; Vultr tags are plain strings, so each becomes \"key=value\"."
  type        = map(string)
  default     = {}
}

variable "nodes" {
  description = <<-EOT
    Nodes of this site, by name. size: Vultr plan (e.g. "vc2-1c-1gb"). image: a
    numeric OS id, a marketplace image id, or "" for Ubuntu 22.04 x64 (os_id 1743).
    role: gateway, member or hub. private_ip: ignored (Vultr assigns VPC addresses
    itself; the nodes output reports the observed one). public: whether the
    public address is reported and used for SSH.
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
    condition     = alltrue([for n in values(var.nodes) : n.private_ip == "" || can(cidrhost("${n.private_ip}/32", 0))])
    error_message = "Each node's private_ip must be empty or an IPv4 address."
  }
}
