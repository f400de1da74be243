// Package artifacts reads, merges and substitutes Tekton's artifacts
// (enable-artifacts) as Tekton's entrypoint and controller do, without
// Tekton's module: it runs in the Pod.
package artifacts

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// FileName is the file a step writes its artifacts to, in its own
// artifacts directory ($(step.artifacts.path)) or the task's
// ($(artifacts.path)).
const FileName = "provenance.json"

// Set is a step's or a task's artifacts (Tekton's v1.Artifacts).
type Set struct {
	Inputs  []*planpb.Artifact
	Outputs []*planpb.Artifact
}

// file is the JSON a step writes, field for field Tekton's v1.Artifacts.
type file struct {
	Inputs  []artifact `json:"inputs,omitempty"`
	Outputs []artifact `json:"outputs,omitempty"`
}

type artifact struct {
	Name        string  `json:"name,omitempty"`
	Values      []value `json:"values,omitempty"`
	BuildOutput bool    `json:"buildOutput,omitempty"`
}

// value is Tekton's ArtifactValue: encoded as Tekton encodes it (digest,
// its algorithms sorted, then uri), which is what a $(...) of it gives.
type value struct {
	Digest map[string]string `json:"digest,omitempty"`
	URI    string            `json:"uri,omitempty"`
}

// Parse reads what a step wrote to an artifacts file, as Tekton's
// entrypoint reads it (encoding/json into v1.Artifacts).
func Parse(raw []byte) (Set, error) {
	var f file
	if err := json.Unmarshal(raw, &f); err != nil {
		return Set{}, fmt.Errorf("artifacts: %w", err)
	}
	return Set{Inputs: toProto(f.Inputs), Outputs: toProto(f.Outputs)}, nil
}

func toProto(in []artifact) []*planpb.Artifact {
	var out []*planpb.Artifact
	for _, a := range in {
		p := &planpb.Artifact{Name: a.Name, BuildOutput: a.BuildOutput}
		for _, v := range a.Values {
			p.Values = append(p.Values, &planpb.ArtifactValue{Digest: v.Digest, Uri: v.URI})
		}
		out = append(out, p)
	}
	return out
}

// Merge adds other to s as Tekton's Artifacts.Merge does: artifacts by
// name, each value once, an output's buildOutput only ever set; an input
// keeps no buildOutput. Tekton's order is a map's (random, and so is its
// $(tasks.T.outputs), the first); here it is the order first seen.
func (s *Set) Merge(other Set) {
	s.Inputs = merge(s.Inputs, other.Inputs, false)
	s.Outputs = merge(s.Outputs, other.Outputs, true)
}

func merge(have, add []*planpb.Artifact, outputs bool) []*planpb.Artifact {
	byName := map[string]*planpb.Artifact{}
	var order []string
	for _, a := range have {
		m := &planpb.Artifact{Name: a.GetName(), Values: a.GetValues()}
		if outputs {
			m.BuildOutput = a.GetBuildOutput()
		}
		if _, ok := byName[a.GetName()]; !ok {
			order = append(order, a.GetName())
		}
		byName[a.GetName()] = m
	}
	for _, a := range add {
		m, ok := byName[a.GetName()]
		if !ok {
			m = &planpb.Artifact{Name: a.GetName()}
			byName[a.GetName()] = m
			order = append(order, a.GetName())
		}
		if outputs && a.GetBuildOutput() {
			m.BuildOutput = true
		}
		for _, v := range a.GetValues() {
			if !slices.ContainsFunc(m.Values, func(w *planpb.ArtifactValue) bool { return sameValue(v, w) }) {
				m.Values = append(m.Values, v)
			}
		}
	}
	if len(order) == 0 {
		return nil
	}
	out := make([]*planpb.Artifact, 0, len(order))
	for _, name := range order {
		out = append(out, byName[name])
	}
	return out
}

func sameValue(a, b *planpb.ArtifactValue) bool {
	return a.GetUri() == b.GetUri() && maps.Equal(a.GetDigest(), b.GetDigest())
}

// ValuesJSON is the values of an artifact as Tekton substitutes them:
// json.Marshal of its []ArtifactValue, which is empty as given (null for
// a step's file that lists none, [] once merged into a task's).
func ValuesJSON(a *planpb.Artifact, empty string) string {
	if len(a.GetValues()) == 0 {
		return empty
	}
	vs := make([]value, 0, len(a.GetValues()))
	for _, v := range a.GetValues() {
		vs = append(vs, value{Digest: v.GetDigest(), URI: v.GetUri()})
	}
	raw, _ := json.Marshal(vs) // strings and maps of strings: cannot fail
	return string(raw)
}

// TaskVars are the $(tasks.TASK.inputs.NAME) and .outputs.NAME of a task
// that ended, and $(tasks.TASK.inputs) and .outputs (its first of each),
// as Tekton's PropagateArtifacts sets them: name → value, without $( ).
func TaskVars(task string, s Set) map[string]string {
	out := map[string]string{}
	for kind, list := range map[string][]*planpb.Artifact{"inputs": s.Inputs, "outputs": s.Outputs} {
		for i, a := range list {
			v := ValuesJSON(a, "[]")
			out[fmt.Sprintf("tasks.%s.%s.%s", task, kind, a.GetName())] = v
			if i == 0 {
				out[fmt.Sprintf("tasks.%s.%s", task, kind)] = v
			}
		}
	}
	return out
}

// stepRef is Tekton's artifactref.StepArtifactRegex:
// $(steps.STEP.inputs.NAME) or $(steps.STEP.outputs.NAME).
var stepRef = regexp.MustCompile(`\$\(steps\.([^.]+)\.(inputs|outputs)\.([^.)]+)\)`)

// StepRefs are the steps whose artifacts text reads.
func StepRefs(text string) []string {
	var steps []string
	for _, m := range stepRef.FindAllStringSubmatch(text, -1) {
		if !slices.Contains(steps, m[1]) {
			steps = append(steps, m[1])
		}
	}
	return steps
}

// ApplyStepRefs substitutes $(steps.STEP.inputs|outputs.NAME) in text
// with the artifacts of the task's earlier steps, as Tekton's entrypoint
// does when a step starts (replaceValue): a reference it cannot answer
// leaves text as it was, and the error says why.
func ApplyStepRefs(text string, steps map[string]Set) (string, error) {
	out := text
	for _, m := range stepRef.FindAllStringSubmatch(text, -1) {
		s, ok := steps[m[1]]
		if !ok {
			return text, fmt.Errorf("%s: step %q wrote no artifacts", m[0], m[1])
		}
		list := s.Inputs
		if m[2] == "outputs" {
			list = s.Outputs
		}
		i := slices.IndexFunc(list, func(a *planpb.Artifact) bool { return a.GetName() == m[3] })
		if i < 0 {
			return text, fmt.Errorf("values for template %s not found", m[0])
		}
		out = strings.ReplaceAll(out, m[0], ValuesJSON(list[i], "null"))
	}
	return out, nil
}

// ReadFile reads an artifacts file; ok is false when there is none.
func ReadFile(path string) (raw []byte, ok bool, err error) {
	raw, err = os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("read artifacts: %w", err)
	}
	return raw, true, nil
}
