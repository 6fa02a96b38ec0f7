# The same outputs exist in tf/aws, tf/linode and tf/vultr.

locals {
  # The public IPv4 address (ipv4 may also hold a 192.168.128.0/17 private one).
  public_ipv4 = {
    for name, i in linode_instance.node : name => try([for ip in i.ipv4 : ip if !startswith(ip, "192.168.")][0], "")
  }
  # The address the VPC interface actually holds (the planned one).
  vpc_ipv4 = {
    for name, i in linode_instance.node : name => one([for nic in i.interface : nic.ipv4[0].vpc if nic.purpose == "vpc"])
  }
}

output "nodes" {
  description = "Per node: name, public_ip (\"\" when not public), private_ip (VPC address), ssh_host (public address, else private), ssh_port, ssh_user, instance_id (Linode id), eni_id (always \"\")."
  value = {
    for name, n in var.nodes : name => {
      name        = name
      public_ip   = n.public ? local.public_ipv4[name] : ""
      private_ip  = local.vpc_ipv4[name]
      ssh_host    = n.public ? local.public_ipv4[name] : local.vpc_ipv4[name]
      ssh_port    = var.ssh_port
      ssh_user    = var.ssh_user
      instance_id = linode_instance.node[name].id
      eni_id      = ""
    }
  }
}

output "route_table_ids" {
  description = "Always empty: Linode VPCs have no route tables (gateways use ip_ranges)."
  value       = []
}

output "vpc_id" {
  description = "The site VPC's id."
  value       = linode_vpc.this.id
}
