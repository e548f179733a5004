#!/bin/bash
# Driver of the 10-minute soaks (issue 25 item 1): one after another, at nice -n 10.
cd /work/wt-soak || exit 1
OUT=/work/wt-soak/soak-results
PY=/work/wt-soak/.venv/bin/python
mkdir -p /tmp/soak
run() {  # name url extra-args...
  local name=$1 url=$2; shift 2
  echo "=== $(date -u +%FT%TZ) start $name: $url $*" >> $OUT/drive.log
  uptime >> $OUT/drive.log
  rm -rf /tmp/soak/work-$name
  nice -n 10 $PY scripts/chaos.py --storage "$url" --duration 600 --seed 0 --workdir /tmp/soak/work-$name \
    --json $OUT/$name.json "$@" > $OUT/$name.log 2>&1
  local rc=$?  # (the runs of 2026-12-07 logged $? after $(date ...): date's status, always 0)
  echo "=== $(date -u +%FT%TZ) end $name rc=$rc" >> $OUT/drive.log
  uptime >> $OUT/drive.log
}
PG=postgresql://postgres@127.0.0.1:5432/test
MY=mysql+pymysql://root@127.0.0.1:3306/test
RD=redis://127.0.0.1:6379/0
run postgresql $PG --restart-server
run postgresql-baseline $PG --no-chaos
run mariadb $MY --restart-server
run mariadb-baseline $MY --no-chaos
rm -f /tmp/soak/soak.db; run sqlite sqlite:////tmp/soak/soak.db
rm -f /tmp/soak/soak.db; run sqlite-baseline sqlite:////tmp/soak/soak.db --no-chaos
run redis $RD
run redis-baseline $RD --no-chaos
echo "=== $(date -u +%FT%TZ) all done" >> $OUT/drive.log
