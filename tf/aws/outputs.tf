# The same outputs exist in tf/aws, tf/linode and tf/vultr.

output "nodes" {
  description = "Per node: name, public_ip (\"\" when not public), private_ip, ssh_host (public address, else private), ssh_port, ssh_user, instance_id, eni_id."
  value = {
    for name, n in var.nodes : name => {
      name        = name
      public_ip   = n.public ? aws_eip.node[name].public_ip : ""
      private_ip  = aws_instance.node[name].private_ip
      ssh_host    = n.public ? aws_eip.node[name].public_ip : aws_instance.node[name].private_ip
      ssh_port    = var.ssh_port
      ssh_user    = var.ssh_user
      instance_id = aws_instance.node[name].id
      eni_id      = aws_instance.node[name].primary_network_interface_id
    }
  }
}

output "route_table_ids" {
  description = "Route tables cloudcast adds remote-site routes to (the site subnet's table)."
  value       = [aws_route_table.this.id]
}

output "vpc_id" {
  description = "The site VPC's id."
  value       = aws_vpc.this.id
}
