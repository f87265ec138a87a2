#!/bin/sh
# pagerbox alert script for a Zabbix "Script" media type (Zabbix 5.0 and later).
#
# Install: copy to the server's AlertScriptsPath (e.g. /usr/lib/zabbix/alertscripts/), chmod 755,
# and create a media type: Type "Script", Script name "pagerbox.sh", Script parameters in this
# order (one per line, exactly as below; the test suite reads them from this header):
#
#   $1 = {ALERT.SENDTO}
#   $2 = {EVENT.VALUE}
#   $3 = {EVENT.NSEVERITY}
#   $4 = {EVENT.ID}
#   $5 = {HOST.NAME}
#   $6 = {EVENT.NAME}
#   $7 = {ITEM.LASTVALUE}
#
# Macros per https://www.zabbix.com/documentation/current/en/manual/appendix/macros/supported_by_location:
# {ALERT.SENDTO} is the user media's "Send to" (here: the pagerbox URL, e.g.
# http://127.0.0.1:8080, or "-" to use the address in /etc/pagerbox/pagerbox.toml);
# {EVENT.VALUE} is 1 for a problem and 0 for its recovery; {EVENT.NSEVERITY} is 0..5 (not
# classified, information, warning, average, high, disaster); {EVENT.ID} is the problem event's
# id, also in its recovery notification, so it is the dedup key that lets the recovery resolve
# the incident the problem opened.
#
# Severity: 0-1 -> info, 2 -> warning, 3 -> error, 4-5 -> critical.
# Token: PAGERBOX_TOKEN_FILE (default: the token_file of the pagerbox config).

set -eu

url=${1:-}
value=${2:-1}
nseverity=${3:-3}
event_id=${4:?missing the event id}
host=${5:-}
name=${6:-}
last=${7:-}
pagerbox=${PAGERBOX_BIN:-pagerbox}

if [ -n "$url" ] && [ "$url" != "-" ]; then
    export PAGERBOX_URL="$url"
fi

case "$nseverity" in
    0 | 1) severity=info ;;
    2) severity=warning ;;
    3) severity=error ;;
    *) severity=critical ;;
esac

if [ "$value" = "0" ]; then
    exec "$pagerbox" send --action resolve --key "zabbix:$event_id" --source "$host" \
        "$host: $name resolved"
fi

exec "$pagerbox" send --action trigger --severity "$severity" --key "zabbix:$event_id" \
    --source "$host" --service "$host" --detail "last_value=$last" --detail "zabbix_event=$event_id" \
    "$host: $name"
