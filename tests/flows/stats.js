// Reads a JSON list from the file named first, writes a total (text) and a summary (JSON) to the folder named second.
const fs = require("fs");
const values = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const total = values.reduce((a, b) => a + b, 0);
fs.writeFileSync(process.argv[3] + "/total", String(total));
fs.writeFileSync(process.argv[3] + "/summary", JSON.stringify({ mean: total / values.length, max: Math.max(...values) }));
console.log(`node saw ${values.length} values`);
