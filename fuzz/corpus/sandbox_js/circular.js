//js
const o = {}; o.o = o; o
