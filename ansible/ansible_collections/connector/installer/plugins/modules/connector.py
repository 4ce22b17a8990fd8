#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: connector-installer maintainers
# Apache License 2.0 (see the repository's Cargo.toml)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: connector
short_description: Install the connector and diagnose it with connector-installer
version_added: "0.1.0"
description:
  - Runs C(connector-installer install) on the target, or into an image with
    O(root). The connector package must be installed first
    (M(connector.installer.connector_package), or M(ansible.builtin.package)
    from a repository).
  - Gathers the diagnosis, C(connector-installer doctor --json), as the fact
    C(connector_doctor).
  - In check mode the installer runs with C(--dry-run); the result is
    C(changed) exactly when its plan is not empty (or the installer is not
    there yet, because the package is only about to be installed).
  - After a real run the result is C(changed) exactly when a step of the
    installer ran (was done or deferred).
  - A failed run fails the task with the installer's message and exit code.
    Faults the installer could not fix are returned in RV(faults); the
    C(connector.installer.connector) role fails such hosts.
options:
  state:
    description:
      - V(present) installs (files, SELinux module and labels,
        kernel headers of every kernel, the service) and diagnoses.
      - V(diagnosed) only diagnoses; it never changes anything.
    type: str
    choices: [present, diagnosed]
    default: present
  root:
    description:
      - The system root to work on, for golden images. V(/) is this host.
    type: path
    default: /
  installer:
    description:
      - The C(connector-installer) to run, on this host. Default,
        C(/usr/sbin/connector-installer) of this host, for V(/) and for
        another root alike.
    type: path
  use_image_installer:
    description:
      - With O(root) an image, run the image's own
        C(/opt/connector/bin/connector-installer) instead of this host's. That
        binary is the image author's, and it runs as root on this host;
        enable this only for images you built yourself.
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds to wait for a package manager or policy store lock held by
        another process.
    type: int
    default: 120
  archives:
    description:
      - An archive list to use instead of the root's C(/etc/connector/archives.conf).
    type: path
  from_dir:
    description:
      - Take header packages the repositories lack from this directory or
        offline bundle (verified) instead of the vendor archives.
    type: path
  prepare_image:
    description:
      - Remove per-host state so that every clone of the image makes its own
        (golden images).
    type: bool
    default: false
requirements:
  - connector-installer on the target (the connector package ships it)
author:
  - connector-installer maintainers (@connector-installer)
notes:
  - Supports check mode.
'''

EXAMPLES = r'''
- name: Install the connector's headers, SELinux module and service; diagnose
  connector.installer.connector:

- name: Prepare a golden image mounted at /mnt/image
  connector.installer.connector:
    root: /mnt/image
    prepare_image: true

- name: Only diagnose; the document is in ansible_facts.connector_doctor
  connector.installer.connector:
    state: diagnosed
'''

RETURN = r'''
rc:
  description: The installer's exit code (docs/exit-codes.md).
  returned: always
  type: int
  sample: 0
plan:
  description: The installer's plan, one entry per step.
  returned: when O(state=present)
  type: list
  elements: dict
  sample: [{"step": "headers", "what": "install kernel-devel-4.18.0-513.5.1.el8_9.x86_64"}]
results:
  description: What each step did (empty in check mode).
  returned: when O(state=present)
  type: list
  elements: dict
  sample: [{"step": "headers", "state": "done", "detail": ""}]
faults:
  description: The faults left after the run, from the diagnosis.
  returned: always
  type: list
  elements: dict
  sample: [{"id": 11, "kernel": "4.18.0-513.5.1.el8_9.x86_64", "fix": "dnf install -y kernel-devel-4.18.0-513.5.1.el8_9.x86_64"}]
healthy:
  description: Whether the diagnosis found the root healthy.
  returned: always
  type: bool
  sample: true
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: complex
  contains:
    connector_doctor:
      description: The whole C(connector-installer doctor --json) document (docs/doctor.md).
      type: dict
      returned: always
'''

import json
import os

from ansible.module_utils.basic import AnsibleModule


def run_json(module, argv):
    """Runs the installer; returns (rc, document or None, stderr)."""
    rc, out, err = module.run_command(argv)
    try:
        doc = json.loads(out) if out.strip() else None
    except ValueError:
        doc = None
    return rc, doc, err


def error_message(doc, err, rc):
    if isinstance(doc, dict) and isinstance(doc.get('error'), dict):
        return doc['error'].get('message') or err.strip()
    return err.strip() or 'connector-installer exited with %d' % rc


def root_args(root):
    return [] if root == '/' else ['--root', root]


def doctor(module, installer, root):
    rc, doc, err = run_json(module, [installer, 'doctor', '--json'] + root_args(root))
    if rc == 2 or not isinstance(doc, dict) or 'faults' not in doc:
        module.fail_json(msg='the diagnosis could not run: %s' % error_message(doc, err, rc), rc=rc)
    return doc


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type='str', default='present', choices=['present', 'diagnosed']),
            root=dict(type='path', default='/'),
            installer=dict(type='path'),
            use_image_installer=dict(type='bool', default=False),
            lock_timeout=dict(type='int', default=120),
            archives=dict(type='path'),
            from_dir=dict(type='path'),
            prepare_image=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    root = os.path.abspath(p['root'])
    if not os.path.isdir(root):
        module.fail_json(msg='root %s is not a directory' % root)
    # Never a binary from inside an image unless asked: it would run as
    # root on this host (docs/security.md).
    if p['installer']:
        installer = os.path.abspath(p['installer'])
    elif root != '/' and p['use_image_installer']:
        installer = os.path.join(root, 'opt/connector/bin/connector-installer')
    else:
        installer = '/usr/sbin/connector-installer'

    result = dict(changed=False, rc=0, plan=[], results=[])
    laid_down = os.path.exists(os.path.join(root, 'opt/connector/bin/connectord'))
    if module.check_mode and p['state'] == 'present' and not laid_down:
        # Check mode: the package that brings the connector is only about
        # to be installed, and everything would follow.
        result.update(changed=True, faults=[], healthy=False,
                      ansible_facts=dict(connector_doctor={}),
                      msg='the connector is not installed in %s yet; the installer would run '
                          'after the connector package' % root)
        module.exit_json(**result)
    if not os.access(installer, os.X_OK):
        if module.check_mode and p['state'] == 'present':
            # Check mode: the package that brings it is only about to be
            # installed, and everything would follow.
            result.update(changed=True, faults=[], healthy=False,
                          ansible_facts=dict(connector_doctor={}),
                          msg='%s is not installed yet; the installer would run after the '
                              'connector package' % installer)
            module.exit_json(**result)
        module.fail_json(msg='%s not found: install the connector package on this host '
                             '(connector.installer.connector_package) or name the installer '
                             '(option installer); use_image_installer runs the image\'s own, '
                             'a binary its author controls' % installer, **result)

    if p['state'] == 'present':
        argv = [installer, 'install', '--json', '--lock-timeout', str(p['lock_timeout'])]
        argv += root_args(root)
        if p['archives']:
            argv += ['--archives', p['archives']]
        if p['from_dir']:
            argv += ['--from', p['from_dir']]
        if p['prepare_image']:
            argv.append('--prepare-image')
        if module.check_mode:
            argv.append('--dry-run')
        rc, doc, err = run_json(module, argv)
        result['rc'] = rc
        if isinstance(doc, dict) and 'plan' in doc:
            result['plan'] = doc.get('plan') or []
            result['results'] = doc.get('results') or []
        if module.check_mode:
            result['changed'] = bool(result['plan'])
        else:
            ran = [r for r in result['results'] if r.get('state') in ('done', 'deferred')]
            result['changed'] = bool(ran)
        # 0 done, 4 deferred until a package transaction ends: not failures.
        if rc not in (0, 4):
            failed = [r for r in result['results'] if r.get('state') == 'failed']
            if failed:
                msg = '; '.join('%s: %s' % (r.get('step'), r.get('detail')) for r in failed)
            else:
                msg = error_message(doc, err, rc)
            report = doctor(module, installer, root) if rc == 1 else {}
            result.update(faults=report.get('faults', []), healthy=report.get('healthy', False),
                          ansible_facts=dict(connector_doctor=report))
            module.fail_json(msg='connector-installer install failed (exit %d): %s' % (rc, msg),
                             **result)

    report = doctor(module, installer, root)
    result.update(faults=report.get('faults', []), healthy=bool(report.get('healthy')),
                  ansible_facts=dict(connector_doctor=report))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
