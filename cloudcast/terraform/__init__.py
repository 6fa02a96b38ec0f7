"""Stage 3: compile the root module and run Terraform."""

from cloudcast.terraform.compile import compile_root, module_name, read_public_key
from cloudcast.terraform.runner import Terraform, build_args, find_binary
from cloudcast.terraform.views import PlanView

__all__ = [
    "PlanView",
    "Terraform",
    "build_args",
    "compile_root",
    "find_binary",
    "module_name",
    "read_public_key",
]
