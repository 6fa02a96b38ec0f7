# One cloudcast site on Linode: a VPC with one subnet spanning the site CIDR,
# an instance per node (a public interface when the node is public, and a VPC
# interface holding the planned private address), and one Cloud Firewall for
# all of the site's instances.

locals {
  name = "${var.name_prefix}-${var.site}"

  # Linode labels allow letters, digits and single dashes (instances also "_" and ".").
  label = trim(replace(replace(local.name, "/[^A-Za-z0-9-]/", "-"), "/-{2,}/", "-"), "-")

  # Linode tags are plain strings.
  tags = sort([
    for k, v in merge(var.tags, { "cloudcast-network" = var.name_prefix, "cloudcast-site" = var.site }) : "${k}=${v}"
  ])

  # the same as cloudcast/providers/linode.py (a unit test keeps the two equal)
  default_image = "linode/ubuntu22.04"

  # Gateways and hubs receive traffic for other sites' CIDRs over the VPC.
  forwarders = toset([for name, n in var.nodes : name if contains(["gateway", "hub"], n.role)])

  # Every source whose traffic is trusted in full: this site, the overlay, other sites.
  trusted_cidrs = distinct(concat([var.cidr, var.overlay_cidr], var.remote_cidrs))

  # Linode firewall rules list IPv4 and IPv6 sources separately, and an empty list is rejected.
  ssh_sources_v4 = [for c in var.ssh_sources : c if !strcontains(c, ":")]
  ssh_sources_v6 = [for c in var.ssh_sources : c if strcontains(c, ":")]
}

# --- network ------------------------------------------------------------------

resource "linode_vpc" "this" {
  label       = substr(local.label, 0, 64)
  region      = var.region
  description = "cloudcast ${local.name}"
}

resource "linode_vpc_subnet" "this" {
  vpc_id = linode_vpc.this.id
  label  = substr(local.label, 0, 64)
  ipv4   = var.cidr
}

# --- nodes --------------------------------------------------------------------

resource "linode_instance" "node" {
  for_each = var.nodes

  label  = substr(replace("${local.label}-${each.key}", "/[^A-Za-z0-9_.-]/", "-"), 0, 50)
  region = var.region
  type   = each.value.size
  image  = each.value.image == "" ? local.default_image : each.value.image
  tags   = local.tags

  # The key goes straight onto the image's root user; no linode_sshkey needed.
  authorized_keys = [chomp(var.ssh_public_key)]

  # Interfaces below are configuration-profile interfaces; pin that generation so
  # an account defaulting to the newer "linode" interfaces does not reject them.
  interface_generation = "legacy_config"

  # eth0: the public interface (default route), for public nodes only.
  dynamic "interface" {
    for_each = each.value.public ? ["public"] : []
    content {
      purpose = "public"
      primary = true
    }
  }

  # eth1 (eth0 on VPC-only nodes): the VPC interface with the planned address.
  # Linode VPCs have no route tables: a gateway or hub instead takes the other
  # sites' CIDRs as ip_ranges, so the VPC delivers traffic for them to it and
  # accepts packets it forwards from them.
  interface {
    purpose   = "vpc"
    subnet_id = linode_vpc_subnet.this.id
    primary   = !each.value.public
    ip_ranges = contains(local.forwarders, each.key) ? var.remote_cidrs : null

    ipv4 {
      vpc = each.value.private_ip
    }
  }
}

# --- firewall -----------------------------------------------------------------

# Inbound: the transport ports from anywhere, SSH from ssh_sources, everything
# from the site, the overlay and the other sites; the rest is dropped.
resource "linode_firewall" "this" {
  label           = substr(local.label, 0, 32)
  inbound_policy  = "DROP"
  outbound_policy = "ACCEPT"
  linodes         = [for i in linode_instance.node : i.id]
  tags            = local.tags

  inbound {
    label    = "transport-udp"
    action   = "ACCEPT"
    protocol = "UDP"
    ports    = join(",", [for p in var.udp_ports : tostring(p)])
    ipv4     = ["0.0.0.0/0"]
  }

  inbound {
    label    = "ssh"
    action   = "ACCEPT"
    protocol = "TCP"
    ports    = tostring(var.ssh_port)
    ipv4     = length(local.ssh_sources_v4) > 0 ? local.ssh_sources_v4 : null
    ipv6     = length(local.ssh_sources_v6) > 0 ? local.ssh_sources_v6 : null
  }

  dynamic "inbound" {
    for_each = ["TCP", "UDP", "ICMP"]
    content {
      label    = "trusted-${lower(inbound.value)}"
      action   = "ACCEPT"
      protocol = inbound.value
      ipv4     = local.trusted_cidrs
    }
  }
}
