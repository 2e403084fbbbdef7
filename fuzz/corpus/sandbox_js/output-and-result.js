//js
console.log("hi"); console.error("err"); ({a: [1, 2n, new Map([[1, 2]])]})
