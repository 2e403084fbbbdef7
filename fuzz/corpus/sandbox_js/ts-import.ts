//ts
import fs from "fs"
