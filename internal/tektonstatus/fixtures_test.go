package tektonstatus

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/client/clientset/versioned/scheme"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// t0 is the start of every hand-built run; times are whole seconds because
// Kubernetes serializes them so.
var t0 = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)

func at(sec int) *timestamppb.Timestamp {
	return timestamppb.New(t0.Add(time.Duration(sec) * time.Second))
}

func mt(sec int) metav1.Time { return metav1.NewTime(t0.Add(time.Duration(sec) * time.Second)) }

func mtp(sec int) *metav1.Time { t := mt(sec); return &t }

func str(s string) *planpb.Value { return &planpb.Value{Type: planpb.ValueType_STRING, StringValue: s} }

// fixture is a compiled PipelineRun "pr-1" of Pipeline "build-pipeline":
// fetch → build → deploy, finally report, as compile would hand it over.
func fixture() *compile.Compiled {
	ps := &v1.PipelineSpec{
		Params:     v1.ParamSpecs{{Name: "env", Type: v1.ParamTypeString}},
		Workspaces: []v1.PipelineWorkspaceDeclaration{{Name: "shared"}},
		Tasks: []v1.PipelineTask{
			{Name: "fetch", TaskRef: &v1.TaskRef{Name: "git-clone", Kind: v1.NamespacedTaskKind},
				Workspaces: []v1.WorkspacePipelineTaskBinding{{Name: "output", Workspace: "shared", SubPath: "src"}}},
			{Name: "build", DisplayName: "Build $(params.image)", RunAfter: []string{"fetch"}, Retries: 2,
				Params: v1.Params{{Name: "image", Value: *v1.NewStructuredValues("$(tasks.fetch.results.commit)")}},
				When:   v1.WhenExpressions{{Input: "$(tasks.fetch.results.commit)", Operator: selection.NotIn, Values: []string{""}}},
				TaskSpec: &v1.EmbeddedTask{
					Metadata: v1.PipelineTaskMetadata{Labels: map[string]string{"kind": "build"}},
					TaskSpec: v1.TaskSpec{
						Params: v1.ParamSpecs{{Name: "image", Type: v1.ParamTypeString}},
						Steps:  []v1.Step{{Name: "compile", Image: "golang"}, {Name: "package", Image: "alpine"}, {Image: "busybox"}},
					}}},
			{Name: "deploy", TaskRef: &v1.TaskRef{Name: "deployer", Kind: v1.NamespacedTaskKind}, RunAfter: []string{"build"},
				Timeout: &metav1.Duration{Duration: 10 * time.Minute},
				When:    v1.WhenExpressions{{Input: "$(params.env)", Operator: selection.In, Values: []string{"prod"}}}},
		},
		Finally: []v1.PipelineTask{
			{Name: "report", TaskRef: &v1.TaskRef{Name: "reporter", Kind: v1.NamespacedTaskKind},
				Params: v1.Params{{Name: "status", Value: *v1.NewStructuredValues("$(tasks.status)")}},
				When:   v1.WhenExpressions{{Input: "$(tasks.fetch.results.commit)", Operator: selection.NotIn, Values: []string{""}}}},
		},
		Results: []v1.PipelineResult{
			{Name: "commit", Type: v1.ResultsTypeString, Value: *v1.NewStructuredValues("$(tasks.fetch.results.commit)")},
			{Name: "files", Type: v1.ResultsTypeArray, Value: *v1.NewStructuredValues("$(tasks.fetch.results.files[*])")},
			{Name: "meta", Type: v1.ResultsTypeObject, Value: *v1.NewStructuredValues("$(tasks.fetch.results.meta[*])")},
		},
	}
	pr := &v1.PipelineRun{
		ObjectMeta: metav1.ObjectMeta{Name: "pr-1", Namespace: "ci", UID: "uid-1",
			Labels:      map[string]string{"team": "a", v1.ManagedByLabelKey: "tekton-pipelines"},
			Annotations: map[string]string{"note": "x"}},
		Spec: v1.PipelineRunSpec{
			PipelineRef:     &v1.PipelineRef{Name: "build-pipeline"},
			Params:          v1.Params{{Name: "env", Value: *v1.NewStructuredValues("staging")}},
			Timeouts:        &v1.TimeoutFields{Pipeline: &metav1.Duration{Duration: time.Hour}},
			TaskRunTemplate: v1.PipelineTaskRunTemplate{ServiceAccountName: "default"},
			Workspaces:      []v1.WorkspaceBinding{{Name: "shared", EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			TaskRunSpecs:    []v1.PipelineTaskRunSpec{{PipelineTaskName: "deploy", ServiceAccountName: "deployer-sa"}},
		},
	}
	when := func(input, op string, values ...string) []*planpb.WhenExpression {
		return []*planpb.WhenExpression{{Input: input, Operator: op, Values: values}}
	}
	steps := func(names ...string) *planpb.TaskSpec {
		s := &planpb.TaskSpec{}
		for _, n := range names {
			s.Steps = append(s.Steps, &planpb.Step{Name: n, Image: "img-" + n})
		}
		return s
	}
	plan := &planpb.Plan{
		Version: planpb.Version, Kind: planpb.RunKind_PIPELINE_RUN, Name: "pr-1", Namespace: "ci", Uid: "uid-1", PipelineName: "build-pipeline",
		Tasks: []*planpb.Task{
			{Name: "fetch", TaskRunName: "pr-1-fetch", TaskRefName: "git-clone", Spec: steps("clone"),
				Workspaces: []*planpb.WorkspaceBinding{{Name: "output", Volume: "shared", SubPath: "src"}},
				// What compile sets; build and deploy leave labels to the fallback.
				Labels: map[string]string{"team": "a", v1.ManagedByLabelKey: "tekton-pipelines", "tekton.dev/pipeline": "build-pipeline",
					"tekton.dev/pipelineRun": "pr-1", "tekton.dev/pipelineRunUID": "uid-1", "tekton.dev/pipelineTask": "fetch", "tekton.dev/memberOf": "tasks"},
				Annotations: map[string]string{"note": "x"}},
			{Name: "build", TaskRunName: "pr-1-build", DisplayName: "Build $(params.image)", RunAfter: []string{"fetch"}, Retries: 2,
				Params: []*planpb.Param{{Name: "image", Value: str("$(tasks.fetch.results.commit)")}},
				When:   when("$(tasks.fetch.results.commit)", "notin", ""), Spec: steps("compile", "package", "")},
			{Name: "deploy", TaskRunName: "pr-1-deploy", TaskRefName: "deployer", RunAfter: []string{"build"},
				Timeout: durationpb.New(10 * time.Minute), When: when("staging", "in", "prod"), Spec: steps("push"), OnErrorContinue: true},
		},
		Finally: []*planpb.Task{
			{Name: "report", TaskRunName: "pr-1-report", TaskRefName: "reporter",
				Params: []*planpb.Param{{Name: "status", Value: str("$(tasks.status)")}},
				When:   when("$(tasks.fetch.results.commit)", "notin", ""), Spec: steps("send")},
		},
	}
	taskSpecs := map[string]*v1.TaskSpec{
		"fetch":  {Steps: []v1.Step{{Name: "clone", Image: "img-clone"}}, Results: []v1.TaskResult{{Name: "commit"}, {Name: "files", Type: v1.ResultsTypeArray}, {Name: "meta", Type: v1.ResultsTypeObject}}},
		"build":  ps.Tasks[1].TaskSpec.TaskSpec.DeepCopy(),
		"deploy": {Steps: []v1.Step{{Name: "push", Image: "img-push"}}},
		"report": {Steps: []v1.Step{{Name: "send", Image: "img-send"}}},
	}
	return &compile.Compiled{Plan: plan, PipelineRun: pr, PipelineSpec: ps, TaskSpecs: taskSpecs}
}

// taskRunFixture is a compiled standalone TaskRun "tr-1" of Task "hello".
func taskRunFixture() *compile.Compiled {
	tr := &v1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Name: "tr-1", Namespace: "ci", UID: "uid-tr",
			Labels: map[string]string{"own": "label", v1.ManagedByLabelKey: "tekton-pipelines"}},
		Spec: v1.TaskRunSpec{TaskRef: &v1.TaskRef{Name: "hello", Kind: v1.NamespacedTaskKind}, ServiceAccountName: "default",
			Timeout: &metav1.Duration{Duration: time.Hour}, Params: v1.Params{{Name: "who", Value: *v1.NewStructuredValues("world")}}},
	}
	plan := &planpb.Plan{Version: planpb.Version, Kind: planpb.RunKind_TASK_RUN, Name: "tr-1", Namespace: "ci", Uid: "uid-tr",
		Tasks: []*planpb.Task{{Name: "hello", TaskRunName: "tr-1", TaskRefName: "hello",
			Labels: map[string]string{"from": "task", "own": "task-value"},
			Spec:   &planpb.TaskSpec{Steps: []*planpb.Step{{Name: "say", Image: "busybox"}, {Name: "check", Image: "busybox"}}}}}}
	return &compile.Compiled{Plan: plan, TaskRun: tr, TaskSpecs: map[string]*v1.TaskSpec{
		"hello": {Steps: []v1.Step{{Name: "say", Image: "busybox"}, {Name: "check", Image: "busybox"}}}}}
}

func cond(status, reason, msg string, sec int) *planpb.Condition {
	return &planpb.Condition{Status: status, Reason: reason, Message: msg, LastTransitionTime: at(sec)}
}

// done is a terminated step as the engine reports it.
func done(name string, start, end int, exit int32, reason string) *planpb.StepState {
	return &planpb.StepState{Name: name, Container: "step-" + name, Image: "img-" + name, Terminated: true,
		ExitCode: exit, Reason: reason, StartedAt: at(start), FinishedAt: at(end)}
}

func succeededTask(name string, start, end int, steps ...*planpb.StepState) *planpb.TaskStatus {
	return &planpb.TaskStatus{Name: name, TaskRunName: "pr-1-" + name, StartTime: at(start), CompletionTime: at(end),
		Condition: cond("True", "Succeeded", "All Steps have completed executing", end), Steps: steps}
}

// decoded is a List written as JSON and read back the way a client does:
// strictly, with Tekton's scheme.
type decoded struct {
	pr  *v1.PipelineRun
	trs []*v1.TaskRun
}

func decodeList(t *testing.T, data []byte) decoded {
	t.Helper()
	var list struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Items      []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatalf("decode list: %v\n%s", err, data)
	}
	if list.APIVersion != "v1" || list.Kind != "List" {
		t.Fatalf("list is %s/%s, want v1/List", list.APIVersion, list.Kind)
	}
	dec := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	var d decoded
	for i, raw := range list.Items {
		obj, _, err := dec.Decode(raw, nil, nil)
		if err != nil {
			t.Fatalf("item %d: strict decode: %v\n%s", i, err, raw)
		}
		switch o := obj.(type) {
		case *v1.PipelineRun:
			if i != 0 {
				t.Errorf("PipelineRun is item %d, want 0", i)
			}
			d.pr = o
		case *v1.TaskRun:
			d.trs = append(d.trs, o)
		default:
			t.Fatalf("item %d is a %T", i, obj)
		}
	}
	return d
}

// writeBoth writes the list as JSON and YAML and returns both decoded.
func writeBoth(t *testing.T, c *compile.Compiled, st *planpb.RunStatus, opts ListOptions) (fromJSON, fromYAML decoded) {
	t.Helper()
	var js, ys bytes.Buffer
	if err := Write(&js, "json", ListWith(c, st, opts)); err != nil {
		t.Fatalf("Write json: %v", err)
	}
	if !bytes.HasSuffix(js.Bytes(), []byte("}\n")) {
		t.Errorf("json output does not end with a newline")
	}
	if err := Write(&ys, "yaml", ListWith(c, st, opts)); err != nil {
		t.Fatalf("Write yaml: %v", err)
	}
	yj, err := yaml.YAMLToJSON(ys.Bytes())
	if err != nil {
		t.Fatalf("yaml output: %v\n%s", err, ys.String())
	}
	return decodeList(t, js.Bytes()), decodeList(t, yj)
}
