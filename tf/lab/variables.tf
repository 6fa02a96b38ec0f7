variable "site" {
  description = "Name of the cloudcast site these lab hosts belong to."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of resource names, as for the cloud modules. Lab hosts are named after their node (the keys of `nodes`), which cloudcast keeps unique across sites; this prefix is recorded in each resource's input only."
  type        = string
  default     = ""
}

variable "lab_command" {
  description = "argv prefix that runs cloudcast, e.g. [\"/usr/bin/python3\", \"-m\", \"cloudcast\"]; `lab host-up ...` is appended."
  type        = list(string)

  validation {
    condition     = length(var.lab_command) > 0
    error_message = "lab_command must name at least the program that runs cloudcast."
  }
}

variable "lab_prefix" {
  description = "Which lab (CLOUDCAST_LAB_PREFIX): 1-11 lowercase letters and digits."
  type        = string
  default     = "cclab"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{0,10}$", var.lab_prefix))
    error_message = "lab_prefix must be 1-11 lowercase letters and digits, starting with a letter."
  }
}

variable "ssh_user" {
  description = "User the controller logs in as; lab hosts only have root."
  type        = string
  default     = "root"
}

variable "ssh_public_key" {
  description = "An extra OpenSSH public key allowed to log in as root (the lab's controller key always is); may be empty."
  type        = string
  default     = ""
}

variable "nodes" {
  description = <<-EOT
    Lab hosts by node name. public_ip: in 198.18.0.0/15 (not 198.18.0.1/.2), unique.
    nat: "none", "nat" or "double". lan_index: N (1-254) of the host's LAN behind NAT
    (100.64.N.0/24; 100.65.N.0/24 behind double NAT); ignored without NAT. role: recorded only.
    lan / lan_ip: the site LAN the host joins as `lan0` (a bridge shared by every host with the
    same lan) and its address there with the prefix length, e.g. "10.1.0.10/24"; both or neither.
    machine: "namespace" (namespaces on this machine) or "vm" (a QEMU guest whose NIC is a tap
    in the host's namespace; needs `cloudcast lab image build`).
  EOT
  type = map(object({
    public_ip = string
    nat       = optional(string, "none")
    role      = optional(string, "member")
    lan_index = optional(number, 0)
    lan       = optional(string, "")
    lan_ip    = optional(string, "")
    machine   = optional(string, "namespace")
  }))

  validation {
    condition     = alltrue([for n in values(var.nodes) : contains(["namespace", "vm"], n.machine)])
    error_message = "Each node's machine must be \"namespace\" or \"vm\"."
  }

  validation {
    condition     = alltrue([for n in values(var.nodes) : contains(["none", "nat", "double"], n.nat)])
    error_message = "Each node's nat must be \"none\", \"nat\" or \"double\"."
  }
  validation {
    condition = alltrue([
      for n in values(var.nodes) : n.nat == "none" || (n.lan_index >= 1 && n.lan_index <= 254 && floor(n.lan_index) == n.lan_index)
    ])
    error_message = "A node behind NAT needs a whole lan_index from 1 to 254."
  }
  validation {
    condition     = alltrue([for n in values(var.nodes) : try(cidrhost("${n.public_ip}/15", 0) == "198.18.0.0", false)])
    error_message = "Each node's public_ip must be an IPv4 address in 198.18.0.0/15."
  }
  validation {
    condition = alltrue([
      for n in values(var.nodes) : (n.lan == "") == (n.lan_ip == "") && (n.lan_ip == "" || can(cidrhost(n.lan_ip, 0)))
    ])
    error_message = "A node's lan and lan_ip go together; lan_ip is an address with its prefix, e.g. 10.1.0.10/24."
  }
  validation {
    condition     = length(distinct([for n in values(var.nodes) : n.public_ip])) == length(var.nodes)
    error_message = "Two nodes share a public_ip."
  }
  validation {
    condition     = alltrue([for k in keys(var.nodes) : can(regex("^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,38}[A-Za-z0-9])?$", k))])
    error_message = "Node names must be letters, digits, '-' and '_' (at most 40)."
  }
}
