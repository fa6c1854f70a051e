#!/bin/sh
# Stairway's Helm hooks for identity-sync: run by the hook jobs in templates/, one phase each.
#   hooks.sh render         only render the site file (the Deployment's init container)
#   hooks.sh pre-upgrade    the path must be rolling-safe; verify, back up, expand
#   hooks.sh post-upgrade   the deferred contract changes, once every pod runs the new release
#   hooks.sh pre-rollback   restore the database from the pre-upgrade backup if its schema moved
# Environment:
#   STAIRWAY_SITE           the site file the commands use (written here when rendered)
#   STAIRWAY_SITE_TEMPLATE  optional: a site file whose "@STAIRWAY_DATABASE_URL@" is replaced by
#                           $STAIRWAY_DATABASE_URL and written to $STAIRWAY_SITE first; the
#                           template stays as it is (a ConfigMap is mounted read-only)
#   STAIRWAY_HOOKS_STATE    where the pre-upgrade hook records its backup for pre-rollback: on
#                           storage every hook job shares (default: helm-hooks beside the site)
#   TARGET                  the release being deployed
set -eu
: "${STAIRWAY_SITE:?set STAIRWAY_SITE to the site file}"
state_dir=${STAIRWAY_HOOKS_STATE:-$(dirname "$STAIRWAY_SITE")/helm-hooks}

render_site() {
    # The URL is written as a TOML string (JSON's escapes are TOML's), to a temporary name,
    # then renamed: a half-written site file is never read.
    mkdir -p "$(dirname "$STAIRWAY_SITE")"
    python3 - "$STAIRWAY_SITE_TEMPLATE" "$STAIRWAY_SITE" <<'PY'
import json, os, sys
url = os.environ.get("STAIRWAY_DATABASE_URL")
if not url:
    sys.exit("error: STAIRWAY_DATABASE_URL is not set\nhint: give the container the database URL from its Secret")
text = open(sys.argv[1], encoding="utf-8").read()
if '"@STAIRWAY_DATABASE_URL@"' not in text:
    sys.exit(f'error: {sys.argv[1]} has no database = "@STAIRWAY_DATABASE_URL@"\nhint: render the chart\'s site ConfigMap')
temporary = sys.argv[2] + ".tmp"
with open(temporary, "w", encoding="utf-8") as out:
    out.write(text.replace('"@STAIRWAY_DATABASE_URL@"', json.dumps(url, ensure_ascii=False).replace("\x7f", "\\u007f")))
os.chmod(temporary, 0o600)
os.replace(temporary, sys.argv[2])
PY
}

if [ -n "${STAIRWAY_SITE_TEMPLATE:-}" ]; then
    render_site
fi

case "${1:-}" in
render)
    ;;
pre-upgrade)
    : "${TARGET:?set TARGET to the release being deployed}"
    mkdir -p "$state_dir"
    # exit 3 from plan --rolling: this release needs the product stopped, not a rolling deploy
    stairway plan --to "$TARGET" --rolling
    stairway verify --to "$TARGET"
    stairway backup --json > "$state_dir/pre-upgrade.json.tmp"
    mv "$state_dir/pre-upgrade.json.tmp" "$state_dir/pre-upgrade.json"
    stairway migrate --to "$TARGET" --phase expand
    ;;
post-upgrade)
    : "${TARGET:?set TARGET to the release being deployed}"
    stairway migrate --to "$TARGET" --phase contract
    ;;
pre-rollback)
    if [ ! -f "$state_dir/pre-upgrade.json" ]; then
        echo "no pre-upgrade backup recorded in $state_dir: nothing to restore" >&2
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
    echo "usage: hooks.sh render|pre-upgrade|post-upgrade|pre-rollback" >&2
    exit 2
    ;;
esac
