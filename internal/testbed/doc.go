// Package testbed holds no code of its own: its subpackages are the rigs the tests and the
// benchmark run snapfleet on, never part of the product. Only _test.go files and bench/
// import them.
//
//   - mototest: starts a real moto_server per test, with a movable EBS clock.
//   - faultproxy: a reverse proxy in front of EC2 that injects AWS's failures.
//   - awslimits: a limits-faithful EC2 endpoint (AWS's token buckets per action).
//   - sim: an in-memory EC2, STS and SQS for fleet-size benchmarks.
//   - fleet: builds EC2 estates in moto (instances, volumes, tags, snapshot histories,
//     other accounts behind AssumeRole) for the end-to-end tests of every package.
//   - logbuf: a buffer a test reads while a logger or a process writes into it.
package testbed
