package facts

import (
	"crypto/md5" //nolint:gosec // a name, as kmeta.ChildName makes it
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// The in-pod build cannot link Tekton: this file is Tekton's matrix
// arithmetic (v1.Matrix FanOut and CountCombinations, the reconciler's
// getNewRunNames, knative's kmeta.ChildName) for a matrix known only at run
// time. Tests pin each function to Tekton's.

// combination is one combination of matrix params: name → value.
type combination map[string]string

// fanOut is Matrix.FanOut: the combinations of the matrix params, with the
// include entries merged into those they do not contradict or added as
// combinations of their own; each combination's params sorted by name.
func fanOut(params []*planpb.Param, include []*planpb.MatrixInclude) [][]*planpb.Param {
	var includes []combination
	for _, inc := range include {
		c := combination{}
		for _, p := range inc.GetParams() {
			c[p.GetName()] = p.GetValue().GetStringValue()
		}
		includes = append(includes, c)
	}
	if len(include) > 0 && len(params) == 0 {
		return toParams(includes)
	}
	var cs []combination
	for _, p := range params {
		if len(cs) == 0 {
			for _, v := range p.GetValue().GetArrayValue() {
				cs = append(cs, combination{p.GetName(): v})
			}
			continue
		}
		var next []combination
		for _, v := range p.GetValue().GetArrayValue() {
			for _, c := range cs {
				n := maps.Clone(c)
				n[p.GetName()] = v
				next = append(next, n)
			}
		}
		cs = next
	}
	for _, c := range cs {
		for _, inc := range includes {
			if c.contains(inc) {
				maps.Copy(c, inc)
			}
		}
	}
	for _, inc := range includes {
		if shouldAdd(cs, inc) {
			cs = append(cs, inc)
		}
	}
	return toParams(cs)
}

// contains: no param of inc has another value in c.
func (c combination) contains(inc combination) bool {
	for name, v := range inc {
		if have, ok := c[name]; ok && have != v {
			return false
		}
	}
	return true
}

// shouldAdd: inc has params and no combination has one of them with its value.
func shouldAdd(cs []combination, inc combination) bool {
	if len(inc) == 0 {
		return false
	}
	for _, c := range cs {
		for name, v := range inc {
			if have, ok := c[name]; ok && have == v {
				return false
			}
		}
	}
	return true
}

func toParams(cs []combination) [][]*planpb.Param {
	out := make([][]*planpb.Param, len(cs))
	for i, c := range cs {
		for _, name := range slices.Sorted(maps.Keys(c)) {
			out[i] = append(out[i], &planpb.Param{Name: name, Value: &planpb.Value{StringValue: c[name]}})
		}
	}
	return out
}

// countCombinations is Matrix.CountCombinations: how many TaskRuns Tekton
// makes (which FanOut's count need not match).
func countCombinations(params []*planpb.Param, include []*planpb.MatrixInclude) int {
	count := 0
	if len(params) > 0 {
		count = 1
		for _, p := range params {
			if l := len(p.GetValue().GetArrayValue()); l > 0 {
				if count > math.MaxInt/l {
					return math.MaxInt
				}
				count *= l
			}
		}
	}
	added := 0
	switch {
	case len(include) == 0:
	case len(params) == 0:
		added = len(include)
	default:
		values := map[string][]string{}
		for _, p := range params {
			values[p.GetName()] = p.GetValue().GetArrayValue()
		}
		for _, inc := range include {
			for _, p := range inc.GetParams() {
				if vs, ok := values[p.GetName()]; ok {
					if slices.Contains(vs, p.GetValue().GetStringValue()) {
						break
					}
					added++
				}
			}
		}
	}
	if count > math.MaxInt-added {
		return math.MaxInt
	}
	return count + added
}

// runNames is getNewRunNames: the TaskRun names of a pipeline task of run
// that fans out into n TaskRuns.
func runNames(task, run string, n int) []string {
	if n == 1 {
		return []string{childName(run, "-"+task)}
	}
	names := make([]string, n)
	for i := range n {
		name := childName(run, fmt.Sprintf("-%s-%d", task, i))
		if !strings.HasSuffix(name, fmt.Sprintf("-%d", i)) {
			name = childName(run, "-"+task)
			name = name[:min(len(name), 63-len(fmt.Sprintf("-%d", n)))]
			name = fmt.Sprintf("%s-%d", name, i)
		}
		names[i] = name
	}
	return names
}

// childName is kmeta.ChildName: parent and suffix, shortened with an md5
// hash past Kubernetes' 63 characters.
func childName(parent, suffix string) string {
	const longest, head = 63, 63 - 32
	n := parent
	if len(parent) > longest-len(suffix) {
		if head-len(suffix) <= 0 {
			h := md5.Sum([]byte(parent + suffix)) //nolint:gosec // a name
			if head < len(parent) {
				parent = parent[:head]
			}
			ret := parent + hex.EncodeToString(h[:])
			if d := longest - len(ret); d > 0 {
				ret += suffix[:d]
			}
			return validName(ret)
		}
		n = fmt.Sprintf("%s%x", parent[:head-len(suffix)], md5.Sum([]byte(parent))) //nolint:gosec // a name
	}
	return n + suffix
}

// validName drops trailing characters that are not alphanumeric.
func validName(n string) string {
	for len(n) > 0 {
		c := n[len(n)-1]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			break
		}
		n = n[:len(n)-1]
	}
	return n
}
