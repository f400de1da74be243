package facts

import (
	"fmt"
	"sync"

	"github.com/google/cel-go/cel"
)

// celEnv is Tekton's CEL environment for when expressions: the standard
// library and macros, no declarations (variables are substituted into the
// expression first, as strings: '$(params.p)' == 'x').
var celEnv = sync.OnceValue(func() *cel.Env {
	env, err := cel.NewEnv()
	if err != nil {
		panic(fmt.Sprintf("CEL environment: %v", err))
	}
	return env
})

// EvalCEL evaluates a when expression's CEL, its variables substituted, as
// Tekton's ResolvedPipelineTask.EvaluateCEL does: it must compile and be a
// boolean.
func EvalCEL(expr string) (bool, error) {
	ast, iss := celEnv().Compile(expr)
	if iss.Err() != nil {
		return false, iss.Err()
	}
	prg, err := celEnv().Program(ast)
	if err != nil {
		return false, err
	}
	out, _, err := prg.Eval(map[string]any{})
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		//lint:ignore ST1005 Tekton's message, word for word
		return false, fmt.Errorf("The CEL expression %s is not evaluated to a boolean", expr)
	}
	return b, nil
}
