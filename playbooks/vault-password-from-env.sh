#!/bin/sh
# Ansible Vault password client: the password from $ANSIBLE_VAULT_PASSWORD (CI secrets).
printf '%s\n' "${ANSIBLE_VAULT_PASSWORD:?set ANSIBLE_VAULT_PASSWORD or ANSIBLE_VAULT_PASSWORD_FILE}"
