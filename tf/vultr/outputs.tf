# The same outputs exist in tf/aws, tf/linode and tf/vultr.

output "nodes" {
  description = "Per node: name, public_ip (\"\" when not public), private_ip (the VPC address Vultr assigned; cloudcast treats it as observed), ssh_host (public address, else private), ssh_port, ssh_user, instance_id, eni_id (always \"\")."
  value = {
    for name, n in var.nodes : name => {
      name        = name
      public_ip   = n.public ? vultr_instance.node[name].main_ip : ""
      private_ip  = vultr_instance.node[name].internal_ip
      ssh_host    = n.public ? vultr_instance.node[name].main_ip : vultr_instance.node[name].internal_ip
      ssh_port    = var.ssh_port
      ssh_user    = var.ssh_user
      instance_id = vultr_instance.node[name].id
      eni_id      = ""
    }
  }
}

output "route_table_ids" {
  description = "Always empty: Vultr VPCs have no routing; remote-site routes are pushed to hosts over SSH."
  value       = []
}

output "vpc_id" {
  description = "The site VPC's id."
  value       = vultr_vpc.this.id
}
