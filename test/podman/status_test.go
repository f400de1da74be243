package podman

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/internal/sidecar"
	"github.com/e7763abc/pod-runner/internal/tektonstatus"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// readPublished rebuilds the run's Tekton status from the supervisor
// container's log, where internal/sidecar publishes every event and the
// final status.
func readPublished(yaml, supervisorLog string) (*tektonRun, error) {
	stream, err := sidecar.Read(strings.NewReader(supervisorLog))
	if err != nil {
		return nil, err
	}
	if stream.Final == nil {
		return nil, fmt.Errorf("no final status among %d events", stream.Events)
	}
	return tektonStatus(yaml, stream.Final)
}

// tektonStatus is the Tekton status of a run's final RunStatus, as
// `pod-runner run -o json` prints it: the same YAML compiled the same way,
// then tektonstatus.List.
func tektonStatus(yaml string, st *planpb.RunStatus) (*tektonRun, error) {
	docs, err := load.Read("run.yaml", strings.NewReader(yaml))
	if err != nil {
		return nil, err
	}
	compiled, err := compile.Compile(context.Background(), docs, compile.Options{Namespace: "default"})
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	var b bytes.Buffer
	if err := tektonstatus.Write(&b, "json", tektonstatus.List(compiled, st)); err != nil {
		return nil, err
	}
	return decodeList(b.Bytes())
}
