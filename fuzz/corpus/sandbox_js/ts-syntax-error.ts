//ts
const x: = 1
