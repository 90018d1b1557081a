#!/usr/bin/env bash
# HTTP compression's cost: one server (pinned to core 0, wrk on core 1), the same URLs asked
# with Accept-Encoding identity, gzip and br, two rounds of 8 s each. The browser client is
# compressed once at start; other replies of 1 KiB or more are gzipped per request.
#
#   bash clients/bot/bench_compression.sh [target/release/rsgame]
#
# Needs wrk and curl (Debian packages); ports 18888, 18999 and 19001 on 127.0.0.1.
set -eu
bin=${1:-target/release/rsgame}
dir=$(mktemp -d)
cat > $dir/rsgame.yaml <<YAML
app:
  data_dir: $dir
http:
  host: 127.0.0.1
  port: 18888
gate:
  host: 127.0.0.1
  tcp_port: 18999
  kcp_port: 19001
database:
  url: sqlite://$dir/rsgame.db?mode=rwc
log:
  level: warn
game:
  data_dir: $dir/game
YAML
taskset -c 0 $bin --config $dir/rsgame.yaml serve > $dir/server.log 2>&1 &
pid=$!
for i in $(seq 1 100); do curl -sf http://127.0.0.1:18888/readyz >/dev/null && break; sleep 0.1; done
for round in 1 2; do
  for url in /app.js /openapi.json /game/v1/game/getShop; do
    for enc in identity gzip br; do
      out=$(taskset -c 1 wrk -t1 -c16 -d8s --latency -H "Accept-Encoding: $enc" http://127.0.0.1:18888$url)
      rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
      p50=$(echo "$out" | awk '$1=="50%" {print $2}')
      p99=$(echo "$out" | awk '$1=="99%" {print $2}')
      xfer=$(echo "$out" | awk '/Transfer\/sec/ {print $2}')
      size=$(curl -s -H "Accept-Encoding: $enc" -o /dev/null -w '%{size_download}' http://127.0.0.1:18888$url)
      echo "round=$round url=$url enc=$enc bytes=$size rps=$rps p50=$p50 p99=$p99 transfer=$xfer"
    done
  done
done
kill -TERM $pid; wait $pid || true
rm -rf $dir
