# Lab hosts through Terraform itself: one terraform_data per node whose provisioners call
# `cloudcast lab host-up` / `lab host-down`. terraform_data is built in, so nothing is
# downloaded. A destroy provisioner may only read `self`, so `input` carries everything.

locals {
  # the host's own eth0 address
  underlay_ip = {
    for name, n in var.nodes : name => (
      n.nat == "nat" ? "100.64.${n.lan_index}.2" :
      n.nat == "double" ? "100.65.${n.lan_index}.2" :
      n.public_ip
    )
  }
  # on a site LAN, the provider-private address is the LAN one (as in a VPC)
  private_ip = {
    for name, n in var.nodes : name => n.lan_ip != "" ? split("/", n.lan_ip)[0] : local.underlay_ip[name]
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
    lan            = each.value.lan
    lan_ip         = each.value.lan_ip
    machine        = each.value.machine
    ns             = "${var.lab_prefix}-${each.key}"
    lab_prefix     = var.lab_prefix
    lab_command    = var.lab_command
    ssh_public_key = var.ssh_public_key
  }

  # A new address, NAT shape, site LAN, key or machine is a new machine, as a changed instance
  # would be. (LAN and machine join the list only when set, so older hosts keep their triggers.)
  triggers_replace = concat(
    [
      var.lab_prefix,
      each.value.public_ip,
      each.value.nat,
      each.value.nat == "none" ? 0 : each.value.lan_index,
      var.ssh_public_key,
    ],
    each.value.lan == "" ? [] : [each.value.lan, each.value.lan_ip],
    each.value.machine == "namespace" ? [] : [each.value.machine],
  )

  provisioner "local-exec" {
    # Every argument single-quoted for /bin/sh.
    command = join(" ", [
      for arg in concat(
        self.input.lab_command,
        ["lab", "host-up", self.input.name, "--ip", self.input.public_ip, "--nat", self.input.nat],
        self.input.nat == "none" ? [] : ["--lan-index", tostring(self.input.lan_index)],
        self.input.lan == "" ? [] : ["--lan", self.input.lan, "--lan-ip", self.input.lan_ip],
        self.input.machine == "namespace" ? [] : ["--machine", self.input.machine],
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
