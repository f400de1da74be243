package compile

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	tektonremote "github.com/tektoncd/pipeline/pkg/remote"
	"github.com/tektoncd/pipeline/pkg/remoteresolution/resource"
	"github.com/tektoncd/pipeline/pkg/resolution/common"
)

// slowRequester answers a request only once it was asked before, as a
// cluster's resolvers answer a ResolutionRequest some time after it was
// created; the documents it serves are by the request's "name" param.
type slowRequester struct {
	docs  map[string]string
	asked map[string]bool
	round []string // the names asked in this round, in order
}

func (r *slowRequester) Submit(_ context.Context, _ resource.ResolverName, req resource.Request) (resource.ResolvedResource, error) {
	var name string
	for _, p := range req.ResolverPayload().ResolutionSpec.Params {
		if p.Name == "name" {
			name = p.Value.StringVal
		}
	}
	r.round = append(r.round, name)
	if !r.asked[name] {
		r.asked[name] = true
		return nil, common.ErrRequestInProgress
	}
	return answer{data: []byte(r.docs[name])}, nil
}

type answer struct{ data []byte }

func (a answer) Data() ([]byte, error)          { return a.data, nil }
func (a answer) Annotations() map[string]string { return nil }
func (a answer) RefSource() *v1.RefSource       { return &v1.RefSource{URI: "test://answer"} }

// TestResolvingRounds: while resolvers have not answered, Compile says so
// with Tekton's reason and the waiting refs, one level of refs per round
// (the Pipeline, then both its Tasks at once, then a StepAction), and
// compiles the run once every answer is in.
func TestResolvingRounds(t *testing.T) {
	r := &slowRequester{asked: map[string]bool{}, docs: map[string]string{
		"p": `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: p}
spec:
  tasks:
  - {name: a, taskRef: {resolver: git, params: [{name: name, value: a}]}}
  - {name: b, taskRef: {resolver: git, params: [{name: name, value: b}]}}
`,
		"a": `apiVersion: tekton.dev/v1
kind: Task
metadata: {name: a}
spec:
  steps: [{name: s, image: busybox, script: "true"}]
`,
		"b": `apiVersion: tekton.dev/v1
kind: Task
metadata: {name: b}
spec:
  steps: [{name: s, ref: {resolver: http, params: [{name: name, value: act}]}}]
`,
		"act": `apiVersion: tekton.dev/v1beta1
kind: StepAction
metadata: {name: act}
spec: {image: busybox, script: "true"}
`,
	}}
	run := `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: run}
spec:
  pipelineRef: {resolver: git, params: [{name: name, value: p}]}
`
	rounds := []struct {
		reason string
		asked  []string
		refs   int
	}{
		{v1.PipelineRunReasonResolvingPipelineRef.String(), []string{"p"}, 1},
		{v1.TaskRunReasonResolvingTaskRef, []string{"p", "a", "b"}, 2},
		{v1.TaskRunReasonResolvingTaskRef, []string{"p", "a", "b", "act"}, 1},
	}
	for i, want := range rounds {
		r.round = nil
		_, err := compileYAML(t, run, Options{Requester: r})
		var re *ResolvingError
		if !errors.As(err, &re) {
			t.Fatalf("round %d: Compile = %v, want a ResolvingError", i, err)
		}
		if !errors.Is(err, tektonremote.ErrRequestInProgress) {
			t.Errorf("round %d: errors.Is(err, tektonremote.ErrRequestInProgress) = false", i)
		}
		if re.Reason != want.reason || len(re.Refs) != want.refs {
			t.Errorf("round %d: reason %q refs %q, want %q and %d refs", i, re.Reason, re.Refs, want.reason, want.refs)
		}
		if !slices.Equal(r.round, want.asked) {
			t.Errorf("round %d: asked %q, want %q", i, r.round, want.asked)
		}
	}
	c, err := compileYAML(t, run, Options{Requester: r})
	if err != nil {
		t.Fatalf("last round: %v", err)
	}
	if got := len(c.Plan.GetTasks()); got != 2 {
		t.Errorf("plan has %d tasks, want 2", got)
	}
	if src := c.RefSources["a"]; src == nil || src.URI != "test://answer" {
		t.Errorf("RefSources[a] = %+v", src)
	}
}

// TestStepActionResolverFedByResult: a StepAction whose resolver params
// use a task result cannot be asked for before the Pod is made: one clear
// error naming the field.
func TestStepActionResolverFedByResult(t *testing.T) {
	_, err := compileYAML(t, `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: run}
spec:
  pipelineSpec:
    tasks:
    - name: first
      taskSpec:
        results: [{name: rev}]
        steps: [{name: s, image: busybox, script: "printf main > $(results.rev.path)"}]
    - name: second
      params: [{name: rev, value: $(tasks.first.results.rev)}]
      taskSpec:
        params: [{name: rev}]
        steps:
        - name: act
          ref: {resolver: git, params: [{name: url, value: "git://127.0.0.1/r"}, {name: revision, value: $(params.rev)}]}
`, Options{Requester: &slowRequester{asked: map[string]bool{}}})
	if err == nil || !strings.Contains(err.Error(), "steps[0].ref.params[1]") || !strings.Contains(err.Error(), "$(params.rev)") {
		t.Fatalf("Compile = %v, want an error at steps[0].ref.params[1] naming $(params.rev)", err)
	}
}
