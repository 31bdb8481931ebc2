package drift

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes r for people: the verdict per region, a matrix of
// check statuses, every finding, and why anything is unknown.
func WriteText(w io.Writer, r Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "drift: topology %s, checked %s in %s\n\n", r.Topology, r.At.Format(time.RFC3339), r.Duration.Round(time.Millisecond))

	fmt.Fprintln(tw, "REGION\tROLE\tVERDICT\tFINDINGS\tUNKNOWN")
	for _, rr := range r.Regions {
		nf, nu := 0, 0
		for _, c := range rr.Checks {
			nf += len(c.Findings)
			nu += len(c.Unknown)
		}
		role := rr.Role
		if role == "" {
			role = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", rr.Region, role, rr.Verdict, nf, nu)
	}

	if len(r.Regions) > 0 {
		fmt.Fprint(tw, "\nCHECK")
		for _, rr := range r.Regions {
			fmt.Fprint(tw, "\t"+rr.Region)
		}
		fmt.Fprintln(tw)
		for i, c := range r.Regions[0].Checks {
			fmt.Fprint(tw, c.Check)
			for _, rr := range r.Regions {
				s := "-"
				if i < len(rr.Checks) {
					s = string(rr.Checks[i].Status)
					if rr.Checks[i].Status == Fail {
						s = "FAIL"
					}
				}
				fmt.Fprint(tw, "\t"+s)
			}
			fmt.Fprintln(tw)
		}
	}

	if len(r.Findings) > 0 {
		fmt.Fprintln(tw, "\nKIND\tREGION\tCHECK\tSUBJECT\tFIELD\tEXPECTED\tACTUAL")
		for _, f := range r.Findings {
			subj := f.Subject()
			if subj == "" {
				subj = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Kind, f.Region, f.Check, subj, f.Field, f.Expected, f.Actual)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	var details []string
	for _, f := range r.Findings {
		if f.Detail != "" {
			details = append(details, fmt.Sprintf("  %s %s %s: %s", f.Region, f.Subject(), f.Field, f.Detail))
		}
	}
	if len(details) > 0 {
		fmt.Fprintf(w, "\ndetails:\n%s\n", strings.Join(details, "\n"))
	}
	var unknown []string
	for _, rr := range r.Regions {
		for _, u := range groupUnknown(rr.Checks) {
			unknown = append(unknown, fmt.Sprintf("  %s %s: %s", rr.Region, strings.Join(u.checks, ", "), u.reason))
		}
	}
	if len(unknown) > 0 {
		fmt.Fprintf(w, "\nunknown (not checked):\n%s\n", strings.Join(unknown, "\n"))
	}
	verdict := "READY: every region passed every check"
	switch r.Worst() {
	case NotReady:
		verdict = "NOT_READY: " + strings.Join(r.regions(NotReady), ", ")
	case Unknown:
		verdict = "UNKNOWN: " + strings.Join(r.regions(Unknown), ", ") + " (nothing failed, some checks could not decide)"
	}
	_, err := fmt.Fprintf(w, "\nverdict: %s\n", verdict)
	return err
}
