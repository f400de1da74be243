package planpb

// Version is the Plan format (Plan.version) this build writes and runs: the
// injector stamps it on every Plan, and a supervisor refuses a Plan of
// another version rather than misread it (an injector and a pod-runner
// image of different builds).
const Version = 2
