package cluster

// exampleEntry is an example that does not pass on the cluster, with why:
// never run here (it needs the network: running it would send traffic off
// this machine), or an expected failure that must fail with output saying
// want. One that passes, or fails some other way, fails TestTektonExamples.
type exampleEntry struct {
	why  string
	want string // in the failure; empty: never run
	// racy: the example races with itself; it may pass too (and then
	// counts as passed).
	racy bool
}

func (e exampleEntry) runnable() bool { return e.want != "" }

// exampleFloor is the share of the runnable examples that passed when the
// ledger was last measured: a lower one fails the test.
const exampleFloor = 0.95

// exampleLedger lists the examples (paths under examples/v1) that do not
// pass in pod mode on the cluster.
var exampleLedger = map[string]exampleEntry{
	"pipelineruns/beta/git-resolver.yaml":              offline(network),
	"pipelineruns/beta/http-resolver.yaml":             offline(network),
	"pipelineruns/beta/http-resolver-credentials.yaml": offline(network),
	"taskruns/beta/bundles-resolver.yaml":              offline(network),
	"taskruns/beta/git-resolver.yaml":                  offline(network),
	"taskruns/beta/hub-resolver.yaml":                  offline(network),
	"taskruns/beta/stepaction-git-resolver.yaml":       offline(network),
	"pipelineruns/pipelinerun.yaml":                    offline("clones from GitHub and pushes an image to a registry with kaniko"),
	"pipelineruns/pipelinerun-with-final-tasks.yaml":   offline("clones from GitHub with the git-init image"),
	"taskruns/alpha/step-stream-results.yaml":          offline("its crane step asks mirror.gcr.io for an image's digest"),
	"taskruns/alpha/step-stream-workspace.yaml":        offline("its crane steps ask mirror.gcr.io for an image's digest"),

	"pipelineruns/beta/pipelinerun-with-matrix-emitting-results.yaml": noMatrixFromResults,
	"pipelineruns/beta/pipelinerun-with-matrix-and-results.yaml":      noMatrixFromResults,
	"taskruns/dind-sidecar.yaml":                                      offline("its sidecar runs Docker's daemon image (docker:dind), which is not built here"),
	"taskruns/sidecar-ready-script.yaml":                              racy(sidecarRace, "/shared/message"),
	"taskruns/sidecar-interp.yaml":                                    racy(sidecarRace, "/shared/value"),
	"taskruns/stepaction-params.yaml": fails("a TaskRun run as a PipelineRun of one task: Tekton's TaskRun validation merges the Task's object param defaults into the "+
		"TaskRun's value, which a StepAction given the whole object then sees; a PipelineTask's param is not merged so (the pipelineruns/ example of the same passes)",
		"Want: taskspec default key1 Got: step-action default key1"),
}

// Why examples fail, where several fail for one reason.
const (
	sidecarRace = "a race in the example: its step reads what its sidecar writes, with nothing waiting (a sidecar with no probe is Ready once running); " +
		"Tekton's steps start seconds after the sidecar (its readiness annotation reaches the Pod through the kubelet), pod-runner's at once"
)

var (
	noMatrixFromResults = fails("a matrix fanned out from task results: pod mode refuses it (a Pod's containers are fixed when it is created; issue 12)",
		"how many TaskRuns it fans out into is known only at run time")
)

func fails(why, want string) exampleEntry { return exampleEntry{why: why, want: want} }

func racy(why, want string) exampleEntry { return exampleEntry{why: why, want: want, racy: true} }

// network is why a resolver example is not run: its resolver reads the
// network. test/cluster's resolution tests run them with their URLs
// pointed at this machine.
const network = "its resolver reads the network (TestResolverExamplesOnCluster runs the resolver examples with their URLs pointed at this machine)"

func offline(why string) exampleEntry { return exampleEntry{why: why} }
