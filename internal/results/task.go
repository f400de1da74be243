package results

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/e7763abc/pod-runner/internal/artifacts"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// Paths are where an attempt's files live, as its steps see them.
type Paths interface {
	ResultsDir() string
	// StepDir is the directory of a step, by step name ("build", not "step-build").
	StepDir(step string) string
	// Workspace is the path of a bound workspace, and whether it is bound.
	Workspace(name string) (string, bool)
	// ArtifactsDir is Tekton's /tekton/artifacts: the task's artifacts.
	ArtifactsDir() string
}

// StepName is the name Tekton gives the step at index i: its own, or
// "unnamed-i" (pod.StepName without the "step-" prefix).
func StepName(name string, i int) string {
	if name == "" {
		return "unnamed-" + strconv.Itoa(i)
	}
	return name
}

// TaskSteps returns the task's steps with every variable substituted, in
// Tekton's order (taskrun/resources): params (the given values over the
// declared defaults), contexts, result paths, step exit code paths, then
// workspaces. Each stage is its own pass, so a value substituted by one stage
// may be substituted again by a later one, exactly as in Tekton. Unnamed steps
// get Tekton's "unnamed-i" names.
func TaskSteps(spec *planpb.TaskSpec, params []*planpb.Param, context map[string]string, paths Paths) ([]*planpb.Step, error) {
	steps := make([]*planpb.Step, len(spec.GetSteps()))
	for i, s := range spec.GetSteps() {
		steps[i] = proto.Clone(s).(*planpb.Step)
		steps[i].Name = StepName(s.GetName(), i)
	}

	pv, err := paramVars(spec.GetParams(), params)
	if err != nil {
		return nil, err
	}
	stages := []*Vars{pv, contextVars(context), resultPathVars(spec, steps, paths), artifactPathVars(steps, paths), exitCodeVars(steps, paths), workspaceVars(spec, paths)}
	for _, vars := range stages {
		for _, s := range steps {
			applyStep(s, vars)
		}
	}
	return steps, nil
}

// applyStep substitutes vars in the fields Tekton substitutes
// (container.ApplyStepReplacements).
func applyStep(s *planpb.Step, v *Vars) {
	s.Image = v.Apply(s.Image)
	s.Command = v.ApplyList(s.Command)
	s.Args = v.ApplyList(s.Args)
	s.Script = v.Apply(s.Script)
	s.WorkingDir = v.Apply(s.WorkingDir)
	s.StdoutPath = v.Apply(s.StdoutPath)
	s.StderrPath = v.Apply(s.StderrPath)
	for _, e := range s.Env {
		e.Value = v.Apply(e.Value)
		if ref := e.GetValueFrom(); ref != nil {
			ref.Name = v.Apply(ref.Name)
			ref.Key = v.Apply(ref.Key)
		}
	}
	for _, f := range s.EnvFrom {
		f.Name = v.Apply(f.Name)
	}
	applyWhen(s.When, v)
}

// applyWhen substitutes v in when expressions: input, values and CEL.
func applyWhen(when []*planpb.WhenExpression, v *Vars) {
	for _, w := range when {
		w.Input = v.Apply(w.Input)
		w.Values = v.ApplyList(w.Values)
		w.Cel = v.Apply(w.Cel)
	}
}

// paramVars are the task's params: declared defaults first, then the values
// given (getTaskParameters). A default may refer to another param's default,
// as Tekton allows.
func paramVars(specs []*planpb.ParamSpec, given []*planpb.Param) (*Vars, error) {
	v := NewVars()
	for _, ps := range specs {
		if d := ps.GetDefault(); d != nil && !refersToParams(d) {
			v.SetParam(ps.GetName(), d)
		}
	}
	for _, ps := range specs {
		if d := ps.GetDefault(); d != nil && refersToParams(d) {
			v.SetParam(ps.GetName(), &planpb.Value{StringValue: v.Apply(d.GetStringValue())})
		}
	}
	for _, p := range given {
		val := p.GetValue()
		if def, ok := v.obj["params."+p.GetName()]; ok && val.GetType() == planpb.ValueType_OBJECT {
			// Given keys override the default's, the others stay (getTaskParameters).
			merged := maps.Clone(def)
			maps.Copy(merged, val.GetObjectValue())
			val = &planpb.Value{Type: planpb.ValueType_OBJECT, ObjectValue: merged}
		}
		v.SetParam(p.GetName(), val)
	}
	for _, ps := range specs {
		if _, ok := v.str["params."+ps.GetName()]; ok {
			continue
		}
		if _, ok := v.arr["params."+ps.GetName()]; ok {
			continue
		}
		if _, ok := v.obj["params."+ps.GetName()]; ok {
			continue
		}
		return nil, fmt.Errorf("param %q has no value and no default", ps.GetName())
	}
	return v, nil
}

func refersToParams(v *planpb.Value) bool {
	for _, r := range expressions(v.GetStringValue()) {
		if len(r) > len("params.") && r[:len("params.")] == "params." {
			return true
		}
	}
	return false
}

func contextVars(context map[string]string) *Vars {
	v := NewVars()
	for k, val := range context {
		v.SetString(k, val)
	}
	return v
}

// resultPathVars are $(results.R.path) and $(step.results.R.path), the
// latter per step (ApplyResults).
func resultPathVars(spec *planpb.TaskSpec, steps []*planpb.Step, paths Paths) *Vars {
	v := NewVars()
	for _, r := range spec.GetResults() {
		p := path.Join(paths.ResultsDir(), r.GetName())
		v.SetString("results."+r.GetName()+".path", p)
		v.SetString(fmt.Sprintf("results[%q].path", r.GetName()), p)
		v.SetString(fmt.Sprintf("results['%s'].path", r.GetName()), p)
	}
	for _, s := range steps {
		for _, r := range s.GetResults() {
			// Step results are per step: substitute them in their own step now.
			sv := NewVars()
			p := path.Join(paths.StepDir(s.GetName()), "results", r.GetName())
			sv.SetString("step.results."+r.GetName()+".path", p)
			sv.SetString(fmt.Sprintf("step.results[%q].path", r.GetName()), p)
			sv.SetString(fmt.Sprintf("step.results['%s'].path", r.GetName()), p)
			applyStep(s, sv)
		}
	}
	return v
}

// artifactPathVars are $(artifacts.path) and $(step.artifacts.path), the
// latter per step (ApplyArtifacts).
func artifactPathVars(steps []*planpb.Step, paths Paths) *Vars {
	for _, s := range steps {
		sv := NewVars()
		sv.SetString("step.artifacts.path", path.Join(paths.StepDir(s.GetName()), "artifacts", artifacts.FileName))
		applyStep(s, sv)
	}
	v := NewVars()
	v.SetString("artifacts.path", path.Join(paths.ArtifactsDir(), artifacts.FileName))
	return v
}

// exitCodeVars are $(steps.step-NAME.exitCode.path) (ApplyStepExitCodePath).
func exitCodeVars(steps []*planpb.Step, paths Paths) *Vars {
	v := NewVars()
	for _, s := range steps {
		v.SetString("steps.step-"+s.GetName()+".exitCode.path", path.Join(paths.StepDir(s.GetName()), "exitCode"))
	}
	return v
}

// workspaceVars are $(workspaces.W.path) and $(workspaces.W.bound)
// (ApplyWorkspaces); an optional workspace left unbound has an empty path.
// $(workspaces.W.claim) and .volume are static: the compiler puts them in
// the task's context.
func workspaceVars(spec *planpb.TaskSpec, paths Paths) *Vars {
	v := NewVars()
	for _, w := range spec.GetWorkspaces() {
		p, bound := paths.Workspace(w.GetName())
		prefix := "workspaces." + w.GetName() + "."
		v.SetString(prefix+"bound", strconv.FormatBool(bound))
		v.SetString(prefix+"path", p)
	}
	return v
}

// SpecRefs are the task result references in the steps and sidecars of a
// spec, in the fields Tekton reads them from in a PipelineTask's embedded
// taskSpec (PipelineTask.GetVarSubstitutionExpressions): such a reference
// makes the task depend on the result, as one in its params does.
func SpecRefs(spec *planpb.TaskSpec) []Ref {
	var refs []Ref
	for _, s := range slices.Concat(spec.GetSteps(), spec.GetSidecars()) {
		texts := slices.Concat([]string{s.GetName(), s.GetImage(), s.GetScript(), s.GetWorkingDir()}, s.GetCommand(), s.GetArgs())
		for _, e := range s.GetEnv() {
			texts = append(texts, e.GetValue(), e.GetValueFrom().GetName(), e.GetValueFrom().GetKey())
		}
		for _, t := range texts {
			for _, r := range Refs(t) {
				if !slices.Contains(refs, r) {
					refs = append(refs, r)
				}
			}
		}
	}
	return refs
}

// Propagate returns spec with the results in v substituted in its steps and
// sidecars, before anything else is: Tekton's PropagateResults, which the
// reconciler applies to an embedded taskSpec when it creates the TaskRun.
// With no results it returns spec itself.
func Propagate(spec *planpb.TaskSpec, v *Vars) *planpb.TaskSpec {
	if v == nil || v.empty() {
		return spec
	}
	out := proto.Clone(spec).(*planpb.TaskSpec)
	for _, s := range slices.Concat(out.GetSteps(), out.GetSidecars()) {
		applyStep(s, v)
	}
	return out
}

// StepResultRefs are the steps whose results a step reads through
// $(steps.S.results.R) in its env, command, args and when expressions,
// each once: what Tekton's entrypoint substitutes when the step starts
// (Tekton's validation allows them nowhere else).
func StepResultRefs(s *planpb.Step) []Ref {
	var refs []Ref
	texts := slices.Concat(s.GetCommand(), s.GetArgs())
	for _, e := range s.GetEnv() {
		texts = append(texts, e.GetValue())
	}
	for _, w := range s.GetWhen() {
		texts = append(append(texts, w.GetInput(), w.GetCel()), w.GetValues()...)
	}
	for _, t := range texts {
		for _, expr := range expressions(t) {
			parts := strings.SplitN(expr, ".", 4)
			if len(parts) < 4 || parts[0] != "steps" || parts[2] != "results" {
				continue
			}
			name, _, _ := strings.Cut(parts[3], ".")
			name, _ = SplitIndex(name)
			if r := (Ref{Task: parts[1], Result: name}); !slices.Contains(refs, r) {
				refs = append(refs, r)
			}
		}
	}
	return refs
}

// ApplyStepResults substitutes step results in a step's env, command, args
// and when expressions, as Tekton's entrypoint does
// (applyStepResultSubstitutions, replaceWhen).
func ApplyStepResults(s *planpb.Step, v *Vars) *planpb.Step {
	out := proto.Clone(s).(*planpb.Step)
	out.Command = v.ApplyList(out.Command)
	out.Args = v.ApplyList(out.Args)
	for _, e := range out.Env {
		e.Value = v.Apply(e.Value)
	}
	applyWhen(out.When, v)
	return out
}
