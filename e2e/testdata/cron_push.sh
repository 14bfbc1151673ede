#!/bin/sh
# A cron-style batch job that reports to a Pushgateway with curl, the way the
# Pushgateway README shows it. Used by pushgate's e2e tests.
#
# usage: cron_push.sh GATEWAY_URL
set -eu
gw=$1

# POST (curl's default with --data-binary) of a heredoc.
cat <<BODY | curl -sSf --data-binary @- "$gw/metrics/job/nightly_backup/instance/db1"
# TYPE backup_last_success_timestamp_seconds gauge
backup_last_success_timestamp_seconds 1700000000
# TYPE backup_size_bytes gauge
# HELP backup_size_bytes Size of the last backup.
backup_size_bytes{db="main"} 4.2e+09
backup_size_bytes{db="audit"} 1.5e+06
BODY

# A gzip-compressed POST adds one more family to the same group.
printf '# TYPE backup_duration_seconds gauge\nbackup_duration_seconds 812.5\n' |
	gzip | curl -sSf -H 'Content-Encoding: gzip' --data-binary @- "$gw/metrics/job/nightly_backup/instance/db1"

# A one-liner PUT to a second group, then a group that is deleted again.
echo 'cleanup_files_removed 17' | curl -sSf -X PUT --data-binary @- "$gw/metrics/job/cleanup"
echo 'temp_metric 1' | curl -sSf --data-binary @- "$gw/metrics/job/temp/instance/x"
curl -sSf -X DELETE "$gw/metrics/job/temp/instance/x"
