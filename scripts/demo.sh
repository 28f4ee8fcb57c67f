#!/usr/bin/env bash
# The main job end to end on a local moto fleet:
#   1. `snapfleet run` on the embedded queue (one process, region us-west-2);
#   2. `snapfleet plan` + two `snapfleet work` processes on SQS (region us-east-1);
#   3. 31 days later (moto's clock and --now moved): plan + work create the new day's
#      snapshots, and a second plan + work prune the expired month-old ones;
#   4. of the us-west-2 fleet: `snapfleet report` (text and HTML), `audit`, `snapshots`,
#      `restore --dry-run` and `drill`.
# Prints each command's JSON summary, then a report of the snapshots that exist.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=$root/bin/snapfleet
demo=$root/.demo
rm -rf "$demo" && mkdir -p "$demo"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo 0 >"$demo/clock"
SNAPFLEET_MOTO_CLOCK=$demo/clock python3 internal/testbed/mototest/moto_clock.py -H 127.0.0.1 -p "$port" >"$demo/moto.log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true; wait $moto_pid 2>/dev/null || true' EXIT

export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_PAGER="" AWS_EC2_METADATA_DISABLED=true
for _ in $(seq 100); do curl -sf "$AWS_ENDPOINT_URL/moto-api/data.json" >/dev/null && break; sleep 0.1; done

aws() { command aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ec2() { aws ec2 "$@" --output text; }

# fleet REGION: four running instances with a root and a data volume, one of them opted
# out with snapfleet:skip=true, one stopped instance, and one snapshot snapfleet did not make.
fleet() {
  local region=$1 ami ids id vol
  ami=$(ec2 describe-images --region "$region" --query 'Images[0].ImageId')
  ids=$(ec2 run-instances --region "$region" --image-id "$ami" --count 5 --instance-type t3.micro \
    --query 'Instances[].InstanceId')
  for id in $ids; do
    vol=$(ec2 create-volume --region "$region" --availability-zone "${region}a" --size 8 --query VolumeId)
    ec2 attach-volume --region "$region" --volume-id "$vol" --instance-id "$id" --device /dev/sdf >/dev/null
    ec2 create-tags --region "$region" --resources "$id" --tags "Key=Name,Value=app-$id" >/dev/null
  done
  # shellcheck disable=SC2086 # the ids, split into $1 .. $5
  set -- $ids
  ec2 create-tags --region "$region" --resources "$4" --tags Key=snapfleet:skip,Value=true >/dev/null
  ec2 stop-instances --region "$region" --instance-ids "$5" >/dev/null
  vol=$(ec2 create-volume --region "$region" --availability-zone "${region}a" --size 1 --query VolumeId)
  ec2 create-snapshot --region "$region" --volume-id "$vol" --description "made by hand" \
    --tag-specifications 'ResourceType=snapshot,Tags=[{Key=Name,Value=hand-made}]' >/dev/null
  echo "$region: 5 instances x 2 volumes (1 opted out, 1 stopped), 1 hand-made snapshot"
}

report() {
  local region=$1 mine="Snapshots[?OwnerId=='123456789012']"
  printf '%s: managed snapshots %s, all snapshots owned by the account %s\n' "$region" \
    "$(ec2 describe-snapshots --region "$region" --owner-ids self --filters Name=tag-key,Values=snapfleet:policy --query "length($mine)")" \
    "$(ec2 describe-snapshots --region "$region" --owner-ids self --query "length($mine)")"
}

config=$root/examples/demo.yaml

step "a fleet in us-west-2 and one in us-east-1"
fleet us-west-2
fleet us-east-1

step "snapfleet run on the embedded queue (us-west-2)"
AWS_REGION=us-west-2 "$bin" run --config "$config" --queue "file:$demo/snapfleet.db" --output json 2>"$demo/run.log"
report us-west-2

step "snapfleet plan -> SQS -> two snapfleet work processes (us-east-1)"
dlq_url=$(aws sqs create-queue --queue-name snapfleet-dlq --query QueueUrl --output text)
dlq_arn=$(aws sqs get-queue-attributes --queue-url "$dlq_url" --attribute-names QueueArn --query Attributes.QueueArn --output text)
queue_url=$(aws sqs create-queue --queue-name snapfleet-jobs --attributes \
  "{\"VisibilityTimeout\":\"30\",\"RedrivePolicy\":\"{\\\"deadLetterTargetArn\\\":\\\"$dlq_arn\\\",\\\"maxReceiveCount\\\":\\\"5\\\"}\"}" \
  --query QueueUrl --output text)

# plan_and_work [--now T]: one plan, then two workers until the queue has been idle 2 s.
# With --now the workers' clock is moved on purpose, away from moto's Date: they pass
# --allow-clock-skew, as a replay would (README: Safety).
plan_and_work() {
  local skew=()
  if [ $# -gt 0 ]; then skew=(--allow-clock-skew); fi
  "$bin" plan --config "$config" --queue "$queue_url" --output json "$@" 2>>"$demo/plan.log"
  "$bin" work --config "$config" --queue "$queue_url" --idle-exit 2s --output json "$@" "${skew[@]}" 2>>"$demo/work1.log" >"$demo/work1.json" &
  local w1=$!
  "$bin" work --config "$config" --queue "$queue_url" --idle-exit 2s --output json "$@" "${skew[@]}" 2>>"$demo/work2.log" >"$demo/work2.json" &
  local w2=$!
  wait $w1 $w2
  echo "worker 1: $(tr -d ' \n' <"$demo/work1.json")"
  echo "worker 2: $(tr -d ' \n' <"$demo/work2.json")"
}
plan_and_work
report us-east-1

step "the same period again: nothing new to do"
"$bin" plan --config "$config" --queue "$queue_url" --output json 2>>"$demo/plan.log" | grep -E '"(snapshot_jobs|delete_jobs|enqueued)"'

# moto stamps new snapshots 31 days ahead; snapfleet's --now is 2 minutes past that, so the
# snapshots this step makes are in its past.
later=$(python3 -c 'import datetime as d; print((d.datetime.now(d.timezone.utc)+d.timedelta(days=31, minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ"))')
echo $((31 * 86400)) >"$demo/clock"
step "31 days later ($later): today's snapshots"
plan_and_work --now "$later"
report us-east-1
step "31 days later: the month-old snapshots have expired and are pruned"
plan_and_work --now "$later"
report us-east-1

step "dry run of the next plan: what would happen, nothing enqueued"
"$bin" plan --config "$config" --dry-run --now "$later" 2>/dev/null | sed -n 1,30p

# What a person asks afterwards, of the us-west-2 fleet that `run` backed up on the
# embedded queue: coverage, the audit trail, recovery points, a restore, a drill.
west=(env AWS_REGION=us-west-2 "$bin")
db="file:$demo/snapfleet.db"
step "coverage report (us-west-2): snapfleet report --queue $db"
"${west[@]}" report --config "$config" --queue "$db" 2>/dev/null | sed -n 1,14p
"${west[@]}" report --config "$config" --queue "$db" --output html --out "$demo/report.html" 2>/dev/null
echo "(the same as one HTML page: $demo/report.html)"

step "audit trail of that run: snapfleet audit --queue $db"
"${west[@]}" audit --queue "$db" 2>/dev/null | sed -n 1,6p

vol=$(ec2 describe-snapshots --region us-west-2 --owner-ids self --filters Name=tag-key,Values=snapfleet:policy \
  --query 'Snapshots[0].VolumeId')
step "recovery points of $vol, and what restoring it would do"
"${west[@]}" snapshots --config "$config" --volume "$vol" 2>/dev/null
"${west[@]}" restore --config "$config" --volume "$vol" --dry-run 2>/dev/null

step "a restore drill: two recovery points restored into throw-away volumes, then deleted"
"${west[@]}" drill --config "$config" --queue "$db" --sample 2 2>"$demo/drill.log"
echo
echo "logs: $demo/*.log"
