"""Stands in for pip's get-pip.py bootstrap where ansible-test cannot
download it (ci-files.testing.ansible.com is not reachable from CI): runs
pip from the pip wheel beside this file, which scripts/setup --test takes
from PyPI, and installs what ansible-test asked for."""
import glob
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
wheels = sorted(glob.glob(os.path.join(here, "pip-*-py3-none-any.whl")))
if not wheels:
    sys.exit("no pip wheel beside %s: run scripts/setup --test" % __file__)
sys.path.insert(0, wheels[-1])
from pip._internal.cli.main import main  # noqa: E402

# get-pip.py's own options; pip does not know them.
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install"] + args))
