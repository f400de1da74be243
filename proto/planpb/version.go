package planpb

// Version is the Plan format (Plan.version) this build writes and runs: the
// injector stamps it on every Plan, and a supervisor refuses a Plan of
// another version rather than misread it (an injector and a pod-runner
// image of different builds).
const Version = 3

// Version 3: a sidecar's readiness_probe and startup_probe. A supervisor of
// version 2 would ignore them and start the steps before the sidecar is
// Ready.
