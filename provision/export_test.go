package provision

// SetFailHook makes Create call f at each of its steps (CreateSteps) and
// fail the step when f returns an error. Tests only.
func SetFailHook(p *Provisioner, f func(step string) error) { p.failAt = f }
