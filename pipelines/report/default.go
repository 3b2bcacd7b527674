package report

// DefaultReportPath is where `ci build` writes its report and `ci push`
// reads it, relative to the working directory.
const DefaultReportPath = ".ci-out/build-report.json"
