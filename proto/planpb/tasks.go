package planpb

// AllTasks are the plan's tasks and finally tasks, each followed by the
// tasks of the child pipeline it runs, recursively: every task of the run
// whose steps run somewhere in it.
func (x *Plan) AllTasks() []*Task {
	return appendTasks(nil, x.GetTasks(), x.GetFinally())
}

func appendTasks(out []*Task, lists ...[]*Task) []*Task {
	for _, list := range lists {
		for _, t := range list {
			out = append(out, t)
			if c := t.GetChild(); c != nil {
				out = appendTasks(out, c.GetTasks(), c.GetFinally())
			}
		}
	}
	return out
}
