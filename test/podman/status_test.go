package podman

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/internal/tektonstatus"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// readPublished rebuilds the run's final status from the supervisor
// container's log (internal/sidecar's published status). Nil until that
// reader exists.
var readPublished func(supervisorLog string) (*planpb.RunStatus, error)

func init() {
	if readPublished != nil {
		statusReader = func(yaml, log string) (*tektonRun, error) {
			st, err := readPublished(log)
			if err != nil {
				return nil, err
			}
			return tektonStatus(yaml, st)
		}
	}
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
