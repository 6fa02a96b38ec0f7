output "nodes" {
  description = "Per node: name, public_ip, private_ip (its site-LAN address when on a LAN, else the host's own eth0 address), ssh_host, ssh_port, ssh_user, instance_id (lab:<namespace>), eni_id (always \"\")."
  value = {
    for name, node in terraform_data.node : name => {
      name        = node.output.name
      public_ip   = node.output.public_ip
      private_ip  = node.output.private_ip
      ssh_host    = node.output.public_ip
      ssh_port    = 22
      ssh_user    = var.ssh_user
      instance_id = "lab:${node.output.ns}"
      eni_id      = ""
    }
  }
}

output "route_table_ids" {
  description = "Always empty: the lab has no route tables to program."
  value       = []
}

output "vpc_id" {
  description = "lab:<site>"
  value       = "lab:${var.site}"
}
