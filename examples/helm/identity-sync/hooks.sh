#!/bin/sh
# Stairway's Helm hooks for identity-sync: run by the hook jobs in templates/, one phase each.
#   hooks.sh pre-upgrade    the path must be rolling-safe; verify, back up, expand
#   hooks.sh post-upgrade   the deferred contract changes, once every pod runs the new release
#   hooks.sh pre-rollback   restore the database from the pre-upgrade backup if its schema moved
# Environment: STAIRWAY_SITE (the site file), TARGET (the release being deployed).
set -eu
: "${STAIRWAY_SITE:?set STAIRWAY_SITE to the site file}"
state_dir=$(dirname "$STAIRWAY_SITE")/helm-hooks
mkdir -p "$state_dir"

case "${1:-}" in
pre-upgrade)
    : "${TARGET:?set TARGET to the release being deployed}"
    # exit 3 from plan --rolling: this release needs the product stopped, not a rolling deploy
    stairway plan --to "$TARGET" --rolling
    stairway verify --to "$TARGET"
    stairway backup --json > "$state_dir/pre-upgrade.json"
    stairway migrate --to "$TARGET" --phase expand
    ;;
post-upgrade)
    : "${TARGET:?set TARGET to the release being deployed}"
    stairway migrate --to "$TARGET" --phase contract
    ;;
pre-rollback)
    if [ ! -f "$state_dir/pre-upgrade.json" ]; then
        echo "no pre-upgrade backup recorded: nothing to restore" >&2
        exit 0
    fi
    backup=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$state_dir/pre-upgrade.json")
    before=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["schema_level"])' "$state_dir/pre-upgrade.json")
    now=$(stairway status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["level"])')
    if [ "$now" != "$before" ]; then
        stairway restore "$backup" --yes
    fi
    ;;
*)
    echo "usage: hooks.sh pre-upgrade|post-upgrade|pre-rollback" >&2
    exit 2
    ;;
esac
