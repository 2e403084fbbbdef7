//ts
interface P { x: number }
const p: P = { x: 1 };
enum E { A, B }
function id<T>(t: T): T { return t }
id(p.x) + E.B
