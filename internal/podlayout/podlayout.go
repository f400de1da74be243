// Package podlayout is the shape of a run's Pod that both the injector (which
// builds it) and the in-pod binary (which lives in it) rely on: paths,
// volume and container names, and the environment that carries the Plan.
package podlayout

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Paths inside the Pod's containers.
const (
	// BinDir holds the pod-runner binary, installed by the init container
	// into the bin volume and mounted read-only into every step container.
	BinDir = "/pod-runner/bin"
	// Binary is the pod-runner binary in BinDir.
	Binary = BinDir + "/pod-runner"
	// ImageBinary is where the pod-runner image holds the binary.
	ImageBinary = "/usr/local/bin/pod-runner"
	// RunDir is the in-memory volume shared by the supervisor and every
	// step container: the supervisor's socket lives there.
	RunDir = "/pod-runner/run"
	// Socket is the supervisor's Unix socket: each step container's
	// `pod-runner step` connects to it, is told what to run, reports how it
	// ended, and is told to exit. A container that dies closes its
	// connection, which the supervisor notices at once.
	Socket = RunDir + "/supervisor.sock"
	// StateDir is where the supervisor mounts the state volume, and under
	// it, at TaskDir(task)/results and TaskDir(task)/steps, every task's
	// own results and steps volumes.
	StateDir = "/pod-runner/state"
	// Tekton's paths, as a Task's steps see them. Each task's step
	// containers mount only their own task's results and steps volumes
	// there (emptyDirs of their own, no subPath: podman 4.3 ignores subPath
	// on an emptyDir), so no task can read or alter another's results.
	ResultsDir = "/tekton/results"
	StepsDir   = "/tekton/steps"
	// RunStepsDir is Tekton's /tekton/run: RunStepsDir/INDEX/status is
	// each step's own directory (its exitCode, results and artifacts), a
	// volume of its own, read-only in the task's other step containers;
	// StepsDir holds links to them (step-NAME and INDEX), read-only in all.
	// The supervisor mounts them at TaskDir(task)/run/INDEX.
	RunStepsDir = "/tekton/run"
	// WorkspaceDir is Tekton's default working directory, an emptyDir per task.
	WorkspaceDir = "/workspace"
	// HomeDir is Tekton's /tekton/home.
	HomeDir = "/tekton/home"
	// ScriptsDir is Tekton's /tekton/scripts: the task's steps and sidecars
	// write their scripts there, an emptyDir of the task's own.
	ScriptsDir = "/tekton/scripts"
	// ArtifactsDir is Tekton's /tekton/artifacts ($(artifacts.path) is its
	// provenance.json), an emptyDir of the task's own that the supervisor
	// mounts at TaskDir(task)/artifacts.
	ArtifactsDir = "/tekton/artifacts"
	// TerminationLog is where the supervisor writes the final run status.
	TerminationLog = "/dev/termination-log"
)

// Environment variables.
const (
	// EnvPlan carries the Plan to the supervisor: the proto message in
	// binary form, gzipped, base64 (EncodePlan). An environment variable works
	// on Kubernetes and under podman kube play alike (podman 4.3 has no
	// downward API volumes). Linux caps one variable at 128 KiB; gzip makes
	// that room for well over a thousand tasks.
	EnvPlan = "POD_RUNNER_PLAN"
	// EnvContainer names the step container to its `pod-runner step`.
	EnvContainer = "POD_RUNNER_CONTAINER"
)

// Container names.
const (
	InitContainer       = "pod-runner-init"
	SupervisorContainer = "pod-runner"
)

// maxName is Kubernetes' limit on container and volume names (DNS label).
const maxName = 63

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// dnsLabel lowercases s, turns runs of other characters into "-", and, when
// the result is longer than 63 characters or had to change, keeps a readable
// prefix and adds a hash of s so that distinct inputs stay distinct.
func dnsLabel(s string) string {
	clean := strings.Trim(notDNS.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if clean == s && len(clean) <= maxName && clean != "" {
		return clean
	}
	sum := sha256.Sum256([]byte(s))
	suffix := hex.EncodeToString(sum[:])[:8]
	prefix := clean
	if len(prefix) > maxName-len(suffix)-1 {
		prefix = strings.TrimRight(prefix[:maxName-len(suffix)-1], "-")
	}
	if prefix == "" {
		return "x-" + suffix
	}
	return prefix + "-" + suffix
}

// StepContainer is the container name of a task's step: "TASK-STEP",
// shortened deterministically past Kubernetes' 63 characters. Tekton names
// a TaskRun's step containers "step-STEP"; in one Pod the task must be part
// of the name.
func StepContainer(task, step string) string { return dnsLabel(task + "-" + step) }

// SidecarContainer is the container name of a task's sidecar; like a
// step's, it runs `pod-runner step`, told by the supervisor when to start
// the sidecar and when to stop it.
func SidecarContainer(task, sidecar string) string {
	return dnsLabel(task + "-sidecar-" + sidecar)
}

// TaskDir is a task's directory in the state volume (relative): its
// containers mount TaskDir/results at ResultsDir and TaskDir/steps at
// StepsDir.
func TaskDir(task string) string { return dnsLabel(task) }

// Volume names. Podman names an emptyDir by its volume name alone, so two
// live pods sharing a name would share data: every emptyDir name carries the
// run's suffix (RunSuffix).
const (
	BinVolume   = "pod-runner-bin"
	RunVolume   = "pod-runner-run"
	StateVolume = "pod-runner-state"
)

// RunSuffix is a short, stable suffix of a run (from its UID).
func RunSuffix(uid string) string {
	sum := sha256.Sum256([]byte(uid))
	return hex.EncodeToString(sum[:])[:8]
}

// VolumeName is the Pod volume of a run's volume (a plan volume, or one of
// the fixed ones above), unique to the run: NAME-SUFFIX, shortened with a
// hash past 63 characters.
func VolumeName(name, uid string) string {
	return dnsLabel(name + "-" + RunSuffix(uid))
}

// WorkspaceVolume is the Pod volume behind a plan volume (a workspace): its
// name is what $(workspaces.W.volume) gives.
func WorkspaceVolume(planVolume, uid string) string { return VolumeName("ws-"+planVolume, uid) }

// EncodePlan is the value of EnvPlan for a Plan's binary proto form.
func EncodePlan(plan []byte) string { return EncodeGzip(plan) }

// DecodePlan reverses EncodePlan.
func DecodePlan(value string) ([]byte, error) {
	plan, err := DecodeGzip(value)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvPlan, err)
	}
	return plan, nil
}

// EncodeGzip is b gzipped, in base64: how a Pod carries a large value in
// an environment variable or an annotation.
func EncodeGzip(b []byte) string {
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	zw.Write(b) // writes to a bytes.Buffer do not fail
	zw.Close()
	return base64.StdEncoding.EncodeToString(z.Bytes())
}

// DecodeGzip reverses EncodeGzip.
func DecodeGzip(value string) ([]byte, error) {
	z, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}
