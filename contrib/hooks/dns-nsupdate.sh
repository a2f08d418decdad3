#!/bin/sh
# [hook.switch-traffic] for DNS: point a name at the new primary with a
# dynamic update (RFC 2136), signed with a TSIG key.
#
#   [hook.switch-traffic]
#   command = DNS_NAME=db.example.internal. DNS_SERVER=10.0.0.53 \
#             DNS_KEYFILE=/etc/tidemark/dns.key /usr/share/tidemark/hooks/dns-nsupdate.sh
#
# Needs: nsupdate (Debian: bind9-dnsutils). DNS_TTL defaults to 30 s so
# clients follow quickly; DNS_ADDRESS overrides the address (default:
# TM_DR_NEW_PRIMARY_HOST, which must then be an IPv4 address).
set -eu
: "${DNS_NAME:?set DNS_NAME (fully qualified, with the final dot)}" "${DNS_SERVER:?set DNS_SERVER}"
addr=${DNS_ADDRESS:-${TM_DR_NEW_PRIMARY_HOST:?run me from tidemark-failoverd}}
case $addr in
*[!0-9.]* | "") echo "'$addr' is not an IPv4 address: set DNS_ADDRESS" >&2; exit 1 ;;
esac
ttl=${DNS_TTL:-30}
keyopt=
[ -n "${DNS_KEYFILE:-}" ] && keyopt="-k $DNS_KEYFILE"
# shellcheck disable=SC2086
nsupdate $keyopt <<EOT
server $DNS_SERVER
update delete $DNS_NAME A
update add $DNS_NAME $ttl A $addr
send
EOT
echo "$DNS_NAME -> $addr (ttl $ttl)"
