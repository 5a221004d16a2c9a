#!/usr/bin/env bash
# terraform fmt and validate for infra/terraform.
#
#   infra/checks/terraform.sh [fmt|validate|all]
#
# fmt needs only the binary and always runs. validate needs the google and archive
# providers; where they cannot be downloaded (no registry access) and no local mirror is
# given in TF_PLUGIN_DIR, it is skipped with a message, never reported as a pass.
#
# Exit codes: 0 passed, 1 failed, 3 skipped (terraform or its providers unavailable).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# TF_DIR is overridable so the tests can prove the checks fail on bad input.
TF_DIR="${TF_DIR:-$ROOT/infra/terraform}"
what="${1:-all}"

# A CLI config path that does not exist makes terraform warn on every call.
if [[ -n "${TF_CLI_CONFIG_FILE:-}" && ! -f "$TF_CLI_CONFIG_FILE" ]]; then
    unset TF_CLI_CONFIG_FILE
fi

if ! command -v terraform >/dev/null 2>&1; then
    echo "terraform.sh: SKIP: no terraform binary on PATH" >&2
    exit 3
fi

run_fmt() {
    if terraform -chdir="$TF_DIR" fmt -check -recursive -diff -no-color; then
        echo "terraform.sh: fmt: ok"
        return 0
    fi
    echo "terraform.sh: FAIL: terraform fmt found unformatted files (run: terraform -chdir=infra/terraform fmt -recursive)" >&2
    return 1
}

run_validate() {
    # Plugins go to a throwaway data dir so a check never leaves state in the work tree.
    local data_dir log rc
    data_dir="$(mktemp -d)"
    log="$data_dir/init.log"
    local init_args=(-backend=false -input=false -no-color -lockfile=readonly)
    [[ -f "$TF_DIR/.terraform.lock.hcl" ]] || init_args=(-backend=false -input=false -no-color)
    [[ -n "${TF_PLUGIN_DIR:-}" ]] && init_args+=(-plugin-dir="$TF_PLUGIN_DIR")
    if ! TF_DATA_DIR="$data_dir" terraform -chdir="$TF_DIR" init "${init_args[@]}" >"$log" 2>&1; then
        if grep -qE "Failed to query available provider packages|Failed to install provider|could not connect to registry|no available releases match" "$log"; then
            echo "terraform.sh: SKIP: terraform validate: providers cannot be obtained here (no registry access; set TF_PLUGIN_DIR to a provider mirror to run it):" >&2
            grep -m1 -E "could not connect|Failed to" "$log" >&2
            rm -rf "$data_dir"
            return 3
        fi
        cat "$log" >&2
        echo "terraform.sh: FAIL: terraform init failed for a reason other than provider download" >&2
        rm -rf "$data_dir"
        return 1
    fi
    TF_DATA_DIR="$data_dir" terraform -chdir="$TF_DIR" validate -no-color
    rc=$?
    rm -rf "$data_dir"
    [[ $rc -eq 0 ]] && echo "terraform.sh: validate: ok" && return 0
    echo "terraform.sh: FAIL: terraform validate" >&2
    return 1
}

case "$what" in
    fmt) run_fmt ;;
    validate) run_validate ;;
    all)
        run_fmt || exit 1
        run_validate
        ;;
    *)
        echo "usage: $0 [fmt|validate|all]" >&2
        exit 2
        ;;
esac
