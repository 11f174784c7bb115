// Renders the embedded openapi.yaml with Redoc (vendored in redoc.standalone.js).
Redoc.init("openapi.yaml", {
  expandResponses: "200,201,202",
  jsonSampleExpandLevel: 3,
  sortRequiredPropsFirst: true,
  pathInMiddlePanel: true,
  hideHostname: true,
  theme: { colors: { primary: { main: "#1d4ed8" } }, typography: { fontFamily: "system-ui, sans-serif", headings: { fontFamily: "system-ui, sans-serif" } } },
}, document.getElementById("redoc"));
