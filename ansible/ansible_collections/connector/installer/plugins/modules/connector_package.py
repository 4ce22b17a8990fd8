#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: connector-installer maintainers
# Apache License 2.0 (see the repository's Cargo.toml)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: connector_package
short_description: Install a connector package file on a host or into an image
version_added: "0.1.0"
description:
  - Installs the connector C(.rpm) or C(.deb) O(path) unless the root already
    has exactly that version (epoch, version and release compared as the
    package manager reports them).
  - On this host (O(root=/)) it uses C(apt-get) or C(dnf)/C(yum), so that
    dependencies come from the configured repositories. Into an image it
    uses C(dpkg --root) or C(rpm --root); the image must already have the
    dependencies.
  - The package family is the root's, decided by its dpkg database.
  - The package's scripts run the installer's hooks, which defer the kernel
    headers until after the transaction; run M(connector.installer.connector)
    next.
options:
  path:
    description: The package file on the target.
    type: path
    required: true
  root:
    description: The system root; V(/) is this host.
    type: path
    default: /
author:
  - connector-installer maintainers (@connector-installer)
notes:
  - Supports check mode.
'''

EXAMPLES = r'''
- name: Install the connector into an image
  connector.installer.connector_package:
    path: /srv/pkgs/connector-1.0.0-1.x86_64.rpm
    root: /mnt/image
'''

RETURN = r'''
version:
  description: The package file's version.
  returned: success
  type: str
  sample: "0:1.0.0-1"
previous:
  description: The version installed before, or null.
  returned: success
  type: str
  sample: null
cmd:
  description: The command that installed it (would have, in check mode).
  returned: when changed
  type: list
  elements: str
'''

import os

from ansible.module_utils.basic import AnsibleModule


def package_family(root):
    if os.path.exists(os.path.join(root, 'var/lib/dpkg/status')):
        return 'deb'
    return 'rpm'


def file_version(module, family, path):
    if family == 'deb':
        argv = ['dpkg-deb', '--showformat=${Package} ${Version}', '-W', '--', path]
    else:
        argv = ['rpm', '-qp', '--nosignature', '--qf', '%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE}', '--', path]
    rc, out, err = module.run_command(argv)
    words = out.split()
    if rc != 0 or len(words) != 2:
        module.fail_json(msg='%s is not a readable %s package: %s' % (path, family, err.strip()), rc=rc)
    if words[0] != 'connector':
        module.fail_json(msg='%s is the package %s, not connector' % (path, words[0]))
    return words[1]


def installed_version(module, family, root):
    if family == 'deb':
        argv = ['dpkg-query', '--admindir=%s' % os.path.join(root, 'var/lib/dpkg'),
                '-W', '-f', '${db:Status-Status} ${Version}', 'connector']
        rc, out, dummy = module.run_command(argv)
        words = out.split()
        if rc == 0 and len(words) == 2 and words[0] == 'installed':
            return words[1]
        return None
    argv = ['rpm', '--root', root, '--dbpath', '/var/lib/rpm', '-q',
            '--qf', '%{EPOCHNUM}:%{VERSION}-%{RELEASE}', 'connector']
    rc, out, dummy = module.run_command(argv)
    return out.strip() if rc == 0 else None


def install_command(module, family, root, path):
    if root == '/':
        if family == 'deb':
            return ['apt-get', 'install', '-y', '-q', path]
        tool = module.get_bin_path('dnf') or module.get_bin_path('yum', required=True)
        return [tool, 'install', '-y', path]
    if family == 'deb':
        return ['dpkg', '--root=%s' % root, '-i', '--', path]
    return ['rpm', '--root', root, '--dbpath', '/var/lib/rpm', '-U', '--', path]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            root=dict(type='path', default='/'),
        ),
        supports_check_mode=True,
    )
    # Absolute, so that no argument can ever be read as an option (a file
    # named --eval=... handed to rpm); every tool also gets `--` before it.
    root = os.path.abspath(module.params['root'])
    path = os.path.abspath(module.params['path'])
    if not os.path.isdir(root):
        module.fail_json(msg='root %s is not a directory' % root)
    if not os.path.isfile(path):
        module.fail_json(msg='%s is not a regular file' % path)
    if not path.endswith(('.rpm', '.deb')):
        module.fail_json(msg='%s is not a .rpm or .deb file' % path)
    family = package_family(root)
    want = file_version(module, family, path)
    have = installed_version(module, family, root)
    if have == want:
        module.exit_json(changed=False, version=want, previous=have)
    argv = install_command(module, family, root, path)
    if not module.check_mode:
        rc, out, err = module.run_command(argv, environ_update={'DEBIAN_FRONTEND': 'noninteractive'})
        if rc != 0:
            module.fail_json(msg='installing %s failed: %s' % (path, (err or out).strip()),
                             rc=rc, cmd=argv, version=want, previous=have)
    module.exit_json(changed=True, version=want, previous=have, cmd=argv)


if __name__ == '__main__':
    main()
