# One cloudcast site on Vultr: a VPC over the site CIDR, an SSH key, one
# firewall group with its rules, and an instance per node attached to the VPC.
#
# Vultr cannot pin an instance's VPC address: the planned private_ip is ignored
# and the nodes output reports the address Vultr assigned (internal_ip).

locals {
  name = "${var.name_prefix}-${var.site}"

  # Vultr tags are plain strings.
  tags = [
    for k, v in merge(var.tags, { "cloudcast-network" = var.name_prefix, "cloudcast-site" = var.site }) : "${k}=${v}"
  ]

  # image: "" = Ubuntu 22.04 x64; a number = an OS id; anything else = a marketplace image id.
  # cloudcast's preflight checks the same default (cloudcast/providers/vultr.py; a unit test
  # keeps the two equal): every provider module takes the same variables, so none carries it.
  default_os_id = 1743
  os_id = {
    for name, n in var.nodes : name => (
      n.image == "" ? local.default_os_id : (can(tonumber(n.image)) ? tonumber(n.image) : null)
    )
  }
  image_id = {
    for name, n in var.nodes : name => (n.image == "" || can(tonumber(n.image)) ? null : n.image)
  }

  # Every source whose traffic is trusted in full: this site, the overlay, other sites.
  trusted_cidrs = distinct(concat([var.cidr, var.overlay_cidr], var.remote_cidrs))

  # One vultr_firewall_rule per (purpose, source, protocol); Vultr writes port ranges as "from:to".
  firewall_rules = merge(
    { for p in var.udp_ports : "transport-udp-${p}" => { protocol = "udp", port = tostring(p), cidr = "0.0.0.0/0", notes = "transport" } },
    { for c in var.ssh_sources : "ssh-${c}" => { protocol = "tcp", port = tostring(var.ssh_port), cidr = c, notes = "ssh" } },
    merge([
      for c in local.trusted_cidrs : {
        "trusted-${c}-tcp"  = { protocol = "tcp", port = "1:65535", cidr = c, notes = "trusted" }
        "trusted-${c}-udp"  = { protocol = "udp", port = "1:65535", cidr = c, notes = "trusted" }
        "trusted-${c}-icmp" = { protocol = "icmp", port = null, cidr = c, notes = "trusted" }
      }
    ]...),
  )
}

# --- network ------------------------------------------------------------------

resource "vultr_vpc" "this" {
  region         = var.region
  description    = local.name
  v4_subnet      = cidrhost(var.cidr, 0)
  v4_subnet_mask = tonumber(split("/", var.cidr)[1])
}

# --- firewall -----------------------------------------------------------------

resource "vultr_firewall_group" "this" {
  description = local.name
}

resource "vultr_firewall_rule" "this" {
  for_each = local.firewall_rules

  firewall_group_id = vultr_firewall_group.this.id
  protocol          = each.value.protocol
  ip_type           = strcontains(each.value.cidr, ":") ? "v6" : "v4"
  subnet            = split("/", each.value.cidr)[0]
  subnet_size       = tonumber(split("/", each.value.cidr)[1])
  port              = each.value.port
  notes             = "cloudcast ${each.value.notes}"
}

# --- nodes --------------------------------------------------------------------

resource "vultr_ssh_key" "this" {
  name    = local.name
  ssh_key = chomp(var.ssh_public_key)
}

resource "vultr_instance" "node" {
  for_each = var.nodes

  label    = "${local.name}-${each.key}"
  hostname = each.key
  region   = var.region
  plan     = each.value.size
  os_id    = local.os_id[each.key]
  image_id = local.image_id[each.key]
  tags     = local.tags

  ssh_key_ids       = [vultr_ssh_key.this.id]
  vpc_ids           = [vultr_vpc.this.id]
  firewall_group_id = vultr_firewall_group.this.id

  enable_ipv6      = false
  backups          = "disabled"
  activation_email = false
}
