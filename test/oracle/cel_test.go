package oracle

import (
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/resources"

	"github.com/e7763abc/pod-runner/internal/facts"
)

// TestCEL: a CEL when expression, its variables substituted, allows a
// task or not, or fails, as Tekton's EvaluateCEL and AllowsExecution
// decide.
func TestCEL(t *testing.T) {
	for _, expr := range []string{
		"'README.md' == 'README.md'",
		"'yes'=='missing'",
		"'Succeeded' != 'Failure'",
		"'monday'=='friday'",
		"'1.5' > '1.10'",
		"int('3') > 2",
		"'a,b,c'.split(',').size() == 3",
		"['x', 'y'].exists(v, v == 'y')",
		"true && !false",
		"'abc'.startsWith('ab') || 1/0 == 1",
		"'abc'",         // not a boolean
		"1 +",           // does not compile
		"params.p == 1", // no declarations: does not compile
		"'x'.matches('^[a-z]+$')",
	} {
		rpt := &resources.ResolvedPipelineTask{PipelineTask: &v1.PipelineTask{When: v1.WhenExpressions{{CEL: expr}}}}
		tektonErr := rpt.EvaluateCEL()
		tektonAllows := tektonErr == nil && rpt.PipelineTask.When.AllowsExecution(rpt.EvaluatedCEL)
		ours, err := facts.EvalCEL(expr)
		switch {
		case (err != nil) != (tektonErr != nil):
			t.Errorf("%s: our error %v, Tekton's %v", expr, err, tektonErr)
		case err != nil && err.Error() != tektonErr.Error():
			t.Errorf("%s: our error %q, Tekton's %q", expr, err, tektonErr)
		case ours != tektonAllows:
			t.Errorf("%s: we allow %v, Tekton %v", expr, ours, tektonAllows)
		}
	}
}
