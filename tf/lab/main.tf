# Lab hosts through Terraform itself: one terraform_data per node whose provisioners call
# `cloudcast lab host-up` / `lab host-down`. terraform_data is built in, so nothing is
# downloaded. A destroy provisioner may only read `self`, so `input` carries everything.

locals {
  private_ip = {
    for name, n in var.nodes : name => (
      n.nat == "nat" ? "100.64.${n.lan_index}.2" :
      n.nat == "double" ? "100.65.${n.lan_index}.2" :
      n.public_ip
    )
  }
}

resource "terraform_data" "node" {
  for_each = var.nodes

  input = {
    name           = each.key
    site           = var.site
    name_prefix    = var.name_prefix
    role           = each.value.role
    public_ip      = each.value.public_ip
    nat            = each.value.nat
    lan_index      = each.value.nat == "none" ? 0 : each.value.lan_index
    private_ip     = local.private_ip[each.key]
    ns             = "${var.lab_prefix}-${each.key}"
    lab_prefix     = var.lab_prefix
    lab_command    = var.lab_command
    ssh_public_key = var.ssh_public_key
  }

  # A new address, NAT shape or key is a new machine, as a changed instance would be.
  triggers_replace = [
    var.lab_prefix,
    each.value.public_ip,
    each.value.nat,
    each.value.nat == "none" ? 0 : each.value.lan_index,
    var.ssh_public_key,
  ]

  provisioner "local-exec" {
    # Every argument single-quoted for /bin/sh.
    command = join(" ", [
      for arg in concat(
        self.input.lab_command,
        ["lab", "host-up", self.input.name, "--ip", self.input.public_ip, "--nat", self.input.nat],
        self.input.nat == "none" ? [] : ["--lan-index", tostring(self.input.lan_index)],
        self.input.ssh_public_key == "" ? [] : ["--authorized-key", self.input.ssh_public_key],
      ) : "'${replace(arg, "'", "'\\''")}'"
    ])
    environment = {
      CLOUDCAST_LAB_PREFIX = self.input.lab_prefix
    }
  }

  provisioner "local-exec" {
    when = destroy
    command = join(" ", [
      for arg in concat(self.input.lab_command, ["lab", "host-down", self.input.name]) :
      "'${replace(arg, "'", "'\\''")}'"
    ])
    environment = {
      CLOUDCAST_LAB_PREFIX = self.input.lab_prefix
    }
  }
}
