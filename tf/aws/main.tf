# One cloudcast site on AWS: a VPC whose single subnet spans the site CIDR,
# an internet gateway, a route table, security groups, a key pair, and per node
# an instance whose primary ENI has the planned private address and, for
# public nodes, an Elastic IP on that ENI.

locals {
  name = "${var.name_prefix}-${var.site}"

  tags = merge(var.tags, {
    "cloudcast:network" = var.name_prefix
    "cloudcast:site"    = var.site
  })

  # Gateways and hubs forward traffic for other addresses and face the internet;
  # so do nodes the spec marks public.
  forwarders = toset([for name, n in var.nodes : name if contains(["gateway", "hub"], n.role)])
  exposed    = toset([for name, n in var.nodes : name if contains(local.forwarders, name) || n.public])
  public     = toset([for name, n in var.nodes : name if n.public])

  # Every source whose traffic is trusted in full: this site, the overlay, other sites.
  trusted_cidrs = toset(concat([var.cidr, var.overlay_cidr], var.remote_cidrs))

  root_login_cloud_config = "#cloud-config\ndisable_root: false\n"

  # image: "ami-..." is used as is; anything else is an AMI name pattern. The default and
  # the owner are the same as cloudcast/providers/aws.py (a unit test keeps them equal).
  default_ami_name   = "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"
  canonical_owner_id = "099720109477"
  ami_pattern        = { for name, n in var.nodes : name => (n.image == "" ? local.default_ami_name : n.image) }
  ami_lookups        = toset([for name, p in local.ami_pattern : p if !startswith(p, "ami-")])
  ami_id = {
    for name, p in local.ami_pattern : name => (startswith(p, "ami-") ? p : data.aws_ami.by_name[p].id)
  }
}

# --- images -------------------------------------------------------------------

data "aws_ami" "by_name" {
  for_each = local.ami_lookups

  most_recent = true
  # The default pattern is Canonical's; a custom pattern may also name your own
  # or Amazon's images.
  owners = each.key == local.default_ami_name ? [local.canonical_owner_id] : ["self", "amazon", local.canonical_owner_id]

  filter {
    name   = "name"
    values = [each.key]
  }
}

# --- network ------------------------------------------------------------------

resource "aws_vpc" "this" {
  cidr_block         = var.cidr
  enable_dns_support = true
  tags               = merge(local.tags, { Name = local.name })
}

# The availability zone is left to AWS (the provider's region decides).
resource "aws_subnet" "this" {
  vpc_id     = aws_vpc.this.id
  cidr_block = var.cidr
  tags       = merge(local.tags, { Name = local.name })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(local.tags, { Name = local.name })
}

# No inline route {} blocks: cloudcast adds routes for remote sites to this table
# with boto3, and inline routes would make Terraform delete them on the next apply.
resource "aws_route_table" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(local.tags, { Name = local.name })
}

resource "aws_route" "internet" {
  route_table_id         = aws_route_table.this.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "this" {
  subnet_id      = aws_subnet.this.id
  route_table_id = aws_route_table.this.id
}

# --- security groups ----------------------------------------------------------

# On every node: all traffic from the site, the overlay and the other sites; all egress.
resource "aws_security_group" "internal" {
  name        = "${local.name}-internal"
  description = "cloudcast ${local.name}: site, overlay and remote sites"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${local.name}-internal" })
}

resource "aws_vpc_security_group_ingress_rule" "trusted" {
  for_each = local.trusted_cidrs

  security_group_id = aws_security_group.internal.id
  description       = "all traffic from ${each.key}"
  cidr_ipv4         = each.key
  ip_protocol       = "-1"
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.internal.id
  description       = "all egress"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
  tags              = local.tags
}

# On gateway, hub and public nodes: the transport ports from anywhere, SSH from ssh_sources.
resource "aws_security_group" "edge" {
  name        = "${local.name}-edge"
  description = "cloudcast ${local.name}: transport and SSH from outside"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${local.name}-edge" })
}

resource "aws_vpc_security_group_ingress_rule" "transport" {
  for_each = toset([for p in var.udp_ports : tostring(p)])

  security_group_id = aws_security_group.edge.id
  description       = "transport udp/${each.key}"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "udp"
  from_port         = tonumber(each.key)
  to_port           = tonumber(each.key)
  tags              = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each = toset(var.ssh_sources)

  security_group_id = aws_security_group.edge.id
  description       = "ssh from ${each.key}"
  cidr_ipv4         = strcontains(each.key, ":") ? null : each.key
  cidr_ipv6         = strcontains(each.key, ":") ? each.key : null
  ip_protocol       = "tcp"
  from_port         = var.ssh_port
  to_port           = var.ssh_port
  tags              = local.tags
}

# --- nodes --------------------------------------------------------------------

resource "aws_key_pair" "this" {
  key_name   = local.name
  public_key = var.ssh_public_key
  tags       = local.tags
}

# Each instance keeps its primary network interface (the ENI cloudcast routes
# remote CIDRs to) with the planned private address. Gateways and hubs forward
# traffic that is not addressed to them, so AWS's source/destination check is
# off on them (here, as this module owns the instances; cloudcast's routes stage
# only confirms it on the ENI its routes target, which moto keeps apart from the
# instance's). (A separate aws_network_interface attached as device 0 would
# survive instance replacement, but moto never detaches it when the instance
# terminates, so `terraform destroy` fails against moto.)
resource "aws_instance" "node" {
  for_each = var.nodes

  ami               = local.ami_id[each.key]
  instance_type     = each.value.size
  key_name          = aws_key_pair.this.key_name
  subnet_id         = aws_subnet.this.id
  private_ip        = each.value.private_ip
  source_dest_check = !contains(local.forwarders, each.key)

  # Cloud images put the key pair on their default user ("ubuntu") and refuse root;
  # with ssh_user "root" cloud-init installs the key for root too, as on Linode and Vultr.
  user_data = var.ssh_user == "root" ? local.root_login_cloud_config : null

  tags = merge(local.tags, { Name = "${local.name}-${each.key}", "cloudcast:role" = each.value.role })

  # A name pattern resolves to the newest matching AMI, which changes whenever
  # Canonical publishes one; that must not replace running nodes. To re-image a
  # node, replace it explicitly (terraform apply -replace=...).
  lifecycle {
    ignore_changes = [ami]
  }
}

# Security groups are attached to the primary ENI rather than listed in
# vpc_security_group_ids: the provider launches into a subnet with a network
# interface specification, and moto then reports no groups on the instance, so
# vpc_security_group_ids would show drift on every plan. The instance also keeps
# the VPC's default group, which allows nothing beyond "internal" below.
resource "aws_network_interface_sg_attachment" "internal" {
  for_each = var.nodes

  security_group_id    = aws_security_group.internal.id
  network_interface_id = aws_instance.node[each.key].primary_network_interface_id
}

resource "aws_network_interface_sg_attachment" "edge" {
  for_each = local.exposed

  security_group_id    = aws_security_group.edge.id
  network_interface_id = aws_instance.node[each.key].primary_network_interface_id
}

# Public addresses are Elastic IPs on the primary ENI. The instance's own
# associate_public_ip_address is left out: it drifts forever in moto, and an EIP
# keeps its address across stop/start.
resource "aws_eip" "node" {
  for_each = local.public

  domain                    = "vpc"
  network_interface         = aws_instance.node[each.key].primary_network_interface_id
  associate_with_private_ip = aws_instance.node[each.key].private_ip
  tags                      = merge(local.tags, { Name = "${local.name}-${each.key}" })

  # The VPC needs its internet gateway before an address can be associated.
  depends_on = [aws_internet_gateway.this]
}
