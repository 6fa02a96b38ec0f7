"""The VM hosts' cloud-init seed (issue 10): what a cloud would hand a fresh instance, as YAML
that no value can break out of."""

from __future__ import annotations

import yaml

from cloudcast.lab.seed import NicConfig, meta_data, network_config, user_data

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7i1f1ZbXwF3wq0Q3xq9b5m1Bz8Qy4J0nYx2k9d3mRz cloudcast-lab"


def test_user_data_carries_keys_hostname_and_the_mirror() -> None:
    text = user_data("vm1", [KEY, "ssh-ed25519 AAAA other"], "deb [trusted=yes] http://198.18.0.3/ ./")
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    assert doc["hostname"] == "vm1" and doc["ssh_authorized_keys"] == [KEY, "ssh-ed25519 AAAA other"]
    assert doc["disable_root"] is False and doc["ssh_pwauth"] is False
    assert doc["manage_etc_hosts"] is False  # cloudcast keeps its own block in /etc/hosts
    assert doc["ssh_genkeytypes"] == ["ed25519"]
    (source,) = doc["write_files"]
    assert source["content"] == "deb [trusted=yes] http://198.18.0.3/ ./\n"


def test_a_value_cannot_add_a_key_or_a_line() -> None:
    hostile = 'vm1"\nruncmd: [touch /tmp/x]\n#'
    doc = yaml.safe_load(user_data(hostile, [hostile], "deb x ./"))
    assert doc["hostname"] == hostile and doc["ssh_authorized_keys"] == [hostile]
    assert "runcmd" not in doc
    meta = yaml.safe_load(meta_data("iid-1\nx: y", hostile))
    assert meta == {"instance-id": "iid-1\nx: y", "local-hostname": hostile}


def test_network_config_sets_static_addresses_per_nic() -> None:
    doc = yaml.safe_load(
        network_config([NicConfig("eth0", "198.18.1.10/15", "198.18.0.1"), NicConfig("eth1", "10.1.0.10/24")])
    )
    assert doc["version"] == 2
    assert doc["ethernets"]["eth0"] == {
        "match": {"name": "eth0"}, "addresses": ["198.18.1.10/15"], "gateway4": "198.18.0.1",
    }  # fmt: skip
    assert doc["ethernets"]["eth1"] == {"match": {"name": "eth1"}, "addresses": ["10.1.0.10/24"]}
