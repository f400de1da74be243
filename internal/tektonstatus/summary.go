package tektonstatus

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// Summary writes a short human account of the run: its outcome, one line per
// task, the skipped tasks and the pipeline results.
func Summary(w io.Writer, c *compile.Compiled, st *planpb.RunStatus) {
	kind := "PipelineRun"
	if c != nil && c.Plan.GetKind() == planpb.RunKind_TASK_RUN {
		kind = "TaskRun"
	}
	name := st.GetName()
	if name == "" && c != nil {
		name = c.Plan.GetName()
	}
	cond := st.GetCondition()
	fmt.Fprintf(w, "%s %s: %s (Succeeded=%s)", kind, name, orDash(cond.GetReason()), orUnknown(cond.GetStatus()))
	if d, ok := duration(st.GetStartTime(), st.GetCompletionTime()); ok {
		fmt.Fprintf(w, " in %s", d)
	}
	fmt.Fprintln(w)
	if msg := cond.GetMessage(); msg != "" {
		fmt.Fprintf(w, "  %s\n", oneLine(msg))
	}

	if tasks := startOrder(st.GetTasks()); len(tasks) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TASK\tSTATUS\tDURATION\tRETRIES")
		for _, ts := range tasks {
			name := ts.GetName()
			if ts.GetFinally() {
				name += " (finally)"
			}
			d := "-"
			if dur, ok := duration(ts.GetStartTime(), ts.GetCompletionTime()); ok {
				d = dur
			} else if ts.GetStartTime() != nil {
				d = "running"
			}
			retries := "-"
			if n := len(ts.GetRetries()); n > 0 {
				retries = fmt.Sprint(n)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, orDash(ts.GetCondition().GetReason()), d, retries)
		}
		tw.Flush()
		for _, ts := range tasks {
			if c := ts.GetCondition(); c.GetStatus() == "False" && c.GetMessage() != "" {
				fmt.Fprintf(w, "  %s: %s\n", ts.GetName(), oneLine(c.GetMessage()))
			}
		}
	}

	if skipped := st.GetSkipped(); len(skipped) > 0 {
		fmt.Fprintln(w, "\nSkipped:")
		for _, s := range skipped {
			fmt.Fprintf(w, "  %s: %s\n", s.GetName(), s.GetReason())
		}
	}

	if results := st.GetResults(); len(results) > 0 {
		fmt.Fprintln(w, "\nResults:")
		for _, r := range results {
			fmt.Fprintf(w, "  %s = %s\n", r.GetName(), valueText(r.GetValue()))
		}
	}
}

// duration is end-start, rounded for reading, when both are known.
func duration(start, end *timestamppb.Timestamp) (string, bool) {
	if start == nil || end == nil {
		return "", false
	}
	d := end.AsTime().Sub(start.AsTime())
	switch {
	case d < 0:
		d = 0
	case d < time.Second:
		d = d.Round(time.Millisecond)
	case d < time.Minute:
		d = d.Round(100 * time.Millisecond)
	default:
		d = d.Round(time.Second)
	}
	return d.String(), true
}

// valueText is a string value as is, arrays and objects as JSON.
func valueText(v *planpb.Value) string {
	var x any
	switch v.GetType() {
	case planpb.ValueType_ARRAY:
		arr := v.GetArrayValue()
		if arr == nil {
			arr = []string{}
		}
		x = arr
	case planpb.ValueType_OBJECT:
		obj := v.GetObjectValue()
		if obj == nil {
			obj = map[string]string{}
		}
		x = obj
	default:
		return v.GetStringValue()
	}
	out, err := json.Marshal(x) // maps marshal with sorted keys
	if err != nil {
		return fmt.Sprint(x)
	}
	return string(out)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "Unknown"
	}
	return s
}
