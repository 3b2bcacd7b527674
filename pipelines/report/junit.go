package report

import (
	"encoding/xml"
	"fmt"
	"strings"

	"github.com/ipex-flake/ipex-flake/internal/atomicfile"
)

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr,omitempty"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr,omitempty"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Body    string `xml:",chardata"`
}

// JUnit renders the report as JUnit XML: one testcase per output, classed
// by output kind (packages, checks, …); failed outputs carry their reason
// and log tail, skipped ones their reason. A testcase has a time only when
// the output's duration is known (durationMs); the suite's time is the sum
// of the known ones, and absent when none is known.
func (r *Report) JUnit() ([]byte, error) {
	s := junitSuite{Name: "ci build " + r.Flake}
	var total int64
	known := false
	for _, o := range r.Outputs {
		c := junitCase{
			Name:      o.Attr,
			Classname: strings.SplitN(o.Attr, ".", 2)[0],
		}
		if o.DurationMs != nil {
			c.Time = seconds(*o.DurationMs)
			total += *o.DurationMs
			known = true
		}
		switch o.Status {
		case StatusFailed:
			s.Failures++
			c.Failure = &junitMessage{Message: o.Reason, Body: strings.Join(o.Log, "\n")}
		case StatusSkipped:
			s.Skipped++
			c.Skipped = &junitMessage{Message: o.Reason}
		default:
			c.SystemOut = o.Status + ": " + strings.Join(o.OutPaths, " ")
		}
		s.Tests++
		s.Cases = append(s.Cases, c)
	}
	if known {
		s.Time = seconds(total)
	}
	out, err := xml.MarshalIndent(junitSuites{Suites: []junitSuite{s}}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(out, '\n')...), nil
}

// WriteJUnit writes the JUnit XML of the report to path.
func (r *Report) WriteJUnit(path string) error {
	data, err := r.JUnit()
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o644)
}

func seconds(ms int64) string { return fmt.Sprintf("%.3f", float64(ms)/1000) }
