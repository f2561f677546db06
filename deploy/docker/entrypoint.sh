#!/bin/sh
# signet container entrypoint.
#
# On first start (no config file in $SIGNET_PATH) it writes
# $SIGNET_PATH/agent.yaml with auth.mode: team -- the daemon refuses to bind
# a non-loopback address (SIGNET_BIND=0.0.0.0 in the image) in local mode --
# and auth.trustedProxies set to the reverse proxy's network, so the
# X-Forwarded-For that Caddy sends is believed. An existing config file is
# never touched. Then it runs the command it was given (`signet serve`).
#
# Environment:
#   SIGNET_PATH             workspace directory (default /data)
#   SIGNET_TRUSTED_PROXIES  comma-separated CIDRs for auth.trustedProxies on
#                           first start (default 172.28.0.0/16, the fixed
#                           subnet of deploy/docker/docker-compose.yml);
#                           `none` writes an empty list.
set -eu

# Keep in step with the subnet in docker-compose.yml.
DEFAULT_TRUSTED_PROXIES="172.28.0.0/16"

SIGNET_PATH="${SIGNET_PATH:-/data}"
export SIGNET_PATH

die() {
    echo "signet-entrypoint: $*" >&2
    exit 1
}

mkdir -p "$SIGNET_PATH" || die "cannot create workspace $SIGNET_PATH"
[ -w "$SIGNET_PATH" ] ||
    die "workspace $SIGNET_PATH is not writable by uid $(id -u); for a bind mount run: chown $(id -u):$(id -g) <dir>"

# The daemon reads the first of these; if any exists the user owns the config.
existing=""
for name in agent.yaml AGENT.yaml config.yaml; do
    if [ -e "$SIGNET_PATH/$name" ]; then
        existing="$name"
        break
    fi
done

if [ -z "$existing" ]; then
    proxies="${SIGNET_TRUSTED_PROXIES:-$DEFAULT_TRUSTED_PROXIES}"
    list=""
    if [ "$proxies" != "none" ]; then
        old_ifs=$IFS
        IFS=,
        # Word splitting on commas is intended here; globbing is off.
        set -f
        for cidr in $proxies; do
            # Trim surrounding blanks.
            cidr=$(printf '%s' "$cidr" | tr -d ' \t\r\n')
            [ -n "$cidr" ] || continue
            case "$cidr" in
                */*) ;;
                *) die "SIGNET_TRUSTED_PROXIES: '$cidr' is not a CIDR (address/prefix)" ;;
            esac
            case "$cidr" in
                *[!0-9A-Fa-f.:/]*) die "SIGNET_TRUSTED_PROXIES: '$cidr' is not a CIDR (address/prefix)" ;;
            esac
            list="$list    - \"$cidr\"
"
        done
        set +f
        IFS=$old_ifs
        [ -n "$list" ] || die "SIGNET_TRUSTED_PROXIES is empty; use 'none' for no trusted proxies"
    fi

    tmp="$SIGNET_PATH/.agent.yaml.tmp.$$"
    {
        echo "# Written by the container entrypoint on first start; edit freely,"
        echo "# it is never overwritten. Every key: config/agent.yaml in signet-rs."
        echo "auth:"
        echo "  # team: every request but /health needs a bearer token."
        echo "  mode: team"
        echo "  # Reverse proxies whose X-Forwarded-For is believed."
        if [ -n "$list" ]; then
            echo "  trustedProxies:"
            printf '%s' "$list"
        else
            echo "  trustedProxies: []"
        fi
    } > "$tmp"
    # Atomic, and never replaces a file that appeared meanwhile.
    # (a hard link fails if the target exists; plain mv where links are not supported).
    if ln "$tmp" "$SIGNET_PATH/agent.yaml" 2>/dev/null; then
        rm -f "$tmp"
        echo "signet-entrypoint: wrote $SIGNET_PATH/agent.yaml (auth.mode: team)" >&2
    elif [ ! -e "$SIGNET_PATH/agent.yaml" ]; then
        mv "$tmp" "$SIGNET_PATH/agent.yaml"
        echo "signet-entrypoint: wrote $SIGNET_PATH/agent.yaml (auth.mode: team)" >&2
    else
        rm -f "$tmp"
    fi
fi

exec "$@"
