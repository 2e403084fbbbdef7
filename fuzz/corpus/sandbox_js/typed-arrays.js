//js
const keep = []; for (;;) keep.push(new Float64Array(1 << 20));
